//! The radial finder: peakfinder8's semantics, with exact statistics and its failures fixed.
//!
//! 1. Every usable pixel between the resolution limits falls in the annulus `rint(r)`, `r` its
//!    centre's distance from the beam. Each annulus gets a mean and standard deviation by sigma
//!    clipping: five passes, each over the values within `min_snr` standard deviations of the
//!    previous pass's mean (the upper bound raised to `adc_threshold`). Counts are integers, so
//!    one pass over the frame fills a histogram per annulus (small counts; zeros are what is
//!    left) plus a list of the rare large ones, and the five passes read only those. The pass
//!    works out 16 (AVX-512) or 8 (AVX2) pixels' counters at once, packs the nonzero pixels'
//!    counters together, and increments them in a loop of their own.
//! 2. An annulus's threshold is `max(adc_threshold, mean + min_snr * sigma)`. peakfinder8 grows
//!    a peak from each pixel above threshold, in raster order, over the 8-connected pixels above
//!    their own annulus's threshold in its module that are in no peak yet (and keeps them when
//!    the peak is rejected): the peaks are the 8-connected components of the pixels above
//!    threshold. They are found that way here, from the pixels above threshold of the chunks
//!    of 16 whose maximum (noted in the first pass) reaches a lower bound of their annuli's
//!    thresholds; the frame is no longer in cache then, so those chunks are read ahead.
//! 3. A peak with `min_pix_count..=max_pix_count` pixels is measured against its local
//!    background: the pixels within `2 * local_bg_radius` of its centroid, in its module, below
//!    threshold and in no peak. It is kept when its background-subtracted total is at least
//!    `min_snr` background standard deviations, its maximum stands above the brightest
//!    background pixel, and its centroid lies in its module.
//!
//! Where this differs from peakfinder8 (each deliberate):
//! - The clipping window includes its bounds. peakfinder8 keeps values strictly inside, so an
//!   annulus whose values are all equal (all 0 at low background, and in fast mode's 100-pixel
//!   samples that is most annuli) keeps no value in the next pass, gets an infinite threshold
//!   and can never hold a peak. A pass that would keep nothing keeps the previous statistics.
//! - Statistics use every pixel, exactly (fast mode samples 100 pixels per annulus; full mode
//!   sums in single precision).
//! - Pixels on a module's border may seed (peakfinder8 starts one pixel in).
//! - A background standard deviation is never below 0.01 ([`super::MIN_SIGMA`]).
//! - The beam centre is a parameter, distances are from pixel centres.

use super::geometry::{Geometry, Layout};
use super::label::Components;
use super::{local_background, BBox, Peak, PeakError, Pixel, Simd, MIN_SIGMA};

/// peakfinder8's parameters, with defaults for photon-counting detectors.
#[derive(Clone, Debug, PartialEq)]
pub struct RadialParams {
    /// A peak pixel must exceed this many counts as well as its annulus's statistics
    /// (peakfinder8 `threshold`, `--threshold`).
    pub adc_threshold: f64,
    /// Clipping width, threshold in standard deviations, and the peaks' minimum SNR
    /// (`--min-snr`).
    pub min_snr: f64,
    /// Smallest and largest peaks, in pixels (`--min-pix-count`, `--max-pix-count`).
    pub min_pix_count: usize,
    pub max_pix_count: usize,
    /// The local background is measured within twice this radius (`--local-bg-radius`).
    pub local_bg_radius: usize,
    /// Only pixels with `min_res < r < max_res` (pixels from the beam) are used
    /// (`--min-res`, `--max-res`).
    pub min_res: f64,
    pub max_res: f64,
    /// The beam centre `(fs, ss)` in pixels (pixel centres at `.5`); `None` is the frame's
    /// centre.
    pub beam_centre: Option<(f64, f64)>,
}

impl Default for RadialParams {
    fn default() -> Self {
        RadialParams {
            adc_threshold: 1.0,
            min_snr: 6.0,
            min_pix_count: 2,
            max_pix_count: 200,
            local_bg_radius: 3,
            min_res: 0.0,
            max_res: f64::INFINITY,
            beam_centre: None,
        }
    }
}

/// Sigma-clipping passes (peakfinder8's `iterations`).
const PASSES: usize = 5;
/// Counters per annulus histogram: values below `LARGE` are counted, larger ones listed.
const CAP: usize = 64;
const LARGE: usize = CAP - 1;
/// The histogram's rows are a power of two plus this many counters (one cache line) apart: a
/// power of two apart, one annulus's counters for every value would share one set of the L1
/// cache, and evict each other.
const ROW_PAD_LOG2: i32 = 4;
const ROW_PAD: usize = 1 << ROW_PAD_LOG2;
/// The first pass notes the maximum of each chunk of this many pixels (row-major, aligned in the
/// frame): one cache line of a uint32 frame. The AVX-512 kernel takes a chunk a step.
const CHUNK: usize = 16;
/// The second pass checks blocks of this many pixels against the lowest threshold of their
/// annuli, then reads the chunks of those that pass whose maximum reaches it.
const BLOCK: usize = 4 * CHUNK;
/// Annuli per group for the lowest seeds.
const GROUP: usize = 64;

pub(crate) struct Radial {
    p: RadialParams,
    geo: Geometry,
    /// Each pixel's annulus: reading 2 bytes a pixel costs less than working it out.
    bin_of: Vec<u16>,
    bins: usize,
    /// Usable pixels per annulus.
    usable_in: Vec<u32>,
    /// Per chunk: its largest value this frame (at most `u16::MAX`).
    chunk_max: Vec<u16>,
    /// Per block: the range of its usable pixels' annuli (empty when it has none).
    block_bins: Vec<(u16, u16)>,
    /// The lowest `seed` of each group of `GROUP` annuli.
    lowest: Vec<u32>,
    /// `CAP` rows of `ROW_PAD + 1 << shift` counters, one per annulus (`value << shift |
    /// value * ROW_PAD + bin`, see [`Run::counter`]; zeros are not counted), and (bin, value)
    /// of the values from `LARGE` up.
    hist: Histogram,
    shift: u32,
    /// `hist` with each annulus's counters side by side, for the clipping.
    by_bin: Vec<u32>,
    /// One run's counters to increment (see `count`).
    todo: Vec<u32>,
    large: Vec<(u32, u32)>,
    offset: Vec<f64>,
    threshold: Vec<f64>,
    /// The smallest count above the threshold, per bin (`u32::MAX`: none).
    seed: Vec<u32>,
    simd: Simd,
    /// This frame's pixels above threshold, their components, and one peak's pixels.
    above: Vec<u32>,
    /// The chunks whose maximum reaches the lowest threshold of their block's annuli.
    candidates: Vec<u32>,
    components: Components,
    pixels: Vec<u32>,
}

impl Radial {
    pub fn new(p: RadialParams, layout: Layout, mask: Option<&[u32]>) -> Result<Radial, PeakError> {
        let bad = |name, why: &str| {
            Err(PeakError::BadParameter {
                name,
                why: why.to_string(),
            })
        };
        if !(p.min_snr >= 0.0 && p.min_snr.is_finite()) {
            return bad("min_snr", "must be a finite number of at least 0");
        }
        if !p.adc_threshold.is_finite() {
            return bad("adc_threshold", "must be finite");
        }
        if p.min_pix_count == 0 || p.min_pix_count > p.max_pix_count {
            return bad(
                "min_pix_count",
                "must be at least 1 and at most max_pix_count",
            );
        }
        if p.local_bg_radius == 0 {
            return bad("local_bg_radius", "must be at least 1");
        }
        if p.min_res.is_nan() || p.max_res.is_nan() {
            return bad("min_res/max_res", "must be numbers");
        }
        let (nx, ny) = (layout.nx as f64, layout.ny as f64);
        let (cx, cy) = p.beam_centre.unwrap_or((nx / 2.0, ny / 2.0));
        if !(cx.is_finite() && cy.is_finite()) {
            return bad("beam_centre", "must be finite");
        }
        let (off_x, off_y) = (0.5 - cx, 0.5 - cy);
        let (min2, max2) = (p.min_res * p.min_res, p.max_res * p.max_res);
        let geo = Geometry::new(layout, mask, |x, y| {
            let (dx, dy) = (x as f64 + off_x, y as f64 + off_y);
            let r2 = dx * dx + dy * dy;
            (p.min_res <= 0.0 || r2 > min2) && r2 < max2
        })?;
        let mut bin_of = vec![0u16; geo.nx * geo.ny];
        for (y, row) in bin_of.chunks_exact_mut(geo.nx).enumerate() {
            let dy = y as f64 + off_y;
            for (x, b) in row.iter_mut().enumerate() {
                let dx = x as f64 + off_x;
                let r = (dx * dx + dy * dy).sqrt().round_ties_even();
                if r >= f64::from(u16::MAX) {
                    return bad("beam_centre", "puts pixels 65535 or more pixels away");
                }
                *b = r as u16;
            }
        }
        let bins = *bin_of.iter().max().unwrap_or(&0) as usize + 1;
        let mut usable_in = vec![0u32; bins];
        let mut block_bins = vec![(u16::MAX, 0u16); (geo.nx * geo.ny).div_ceil(BLOCK)];
        for y in 0..geo.ny {
            for &(x0, x1) in geo.runs(y) {
                for i in y * geo.nx + x0 as usize..y * geo.nx + x1 as usize {
                    let (b, block) = (bin_of[i], &mut block_bins[i / BLOCK]);
                    usable_in[b as usize] += 1;
                    *block = (block.0.min(b), block.1.max(b));
                }
            }
        }
        let shift = bins.next_power_of_two().ilog2();
        let hist = Histogram::new(
            CAP * ((1 << shift) + ROW_PAD),
            usable_in.iter().max().copied().unwrap_or(0),
        );
        Ok(Radial {
            p,
            usable_in,
            chunk_max: vec![0; (geo.nx * geo.ny).div_ceil(CHUNK)],
            todo: vec![0; geo.nx + CHUNK],
            geo,
            block_bins,
            lowest: Vec::new(),
            bin_of,
            bins,
            hist,
            shift,
            by_bin: Vec::new(),
            large: Vec::new(),
            offset: vec![0.0; bins],
            threshold: vec![0.0; bins],
            seed: vec![0; bins],
            simd: Simd::detect(),
            above: Vec::new(),
            candidates: Vec::new(),
            components: Components::default(),
            pixels: Vec::new(),
        })
    }

    #[cfg(test)]
    pub fn params(&self) -> &RadialParams {
        &self.p
    }

    pub fn begin(&mut self) {
        self.hist.clear();
        self.large.clear();
        self.chunk_max.fill(0);
    }

    /// Adds the frame's pixels `first..first + px.len()` to the annuli's histograms.
    pub fn feed<T: Pixel>(&mut self, first: usize, px: &[T], limit: u32) {
        let nx = self.geo.nx;
        let end = first + px.len();
        for y in first / nx..end.div_ceil(nx) {
            let row = y * nx;
            let (a, b) = (first.max(row) - row, end.min(row + nx) - row);
            for i in 0..self.geo.runs(y).len() {
                let (x0, x1) = self.geo.runs(y)[i];
                let (s, e) = ((x0 as usize).max(a), (x1 as usize).min(b));
                if s < e {
                    self.fill(row + s, &px[row + s - first..row + e - first], limit);
                }
            }
        }
    }

    /// Counts `values`, the usable pixels `at..at + values.len()` of one row, in their
    /// annuli's histograms, and notes each chunk's maximum.
    fn fill<T: Pixel>(&mut self, at: usize, values: &[T], limit: u32) {
        let bins = &self.bin_of[at..at + values.len()];
        let (maxima, todo) = (&mut self.chunk_max[..], &mut self.todo[..]);
        let run = Run {
            at,
            values,
            bins,
            shift: self.shift,
            limit,
        };
        let (n, largest) = match self.simd {
            Simd::Baseline => count(&run, maxima, todo),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Simd::Avx2 is only chosen when the CPU has AVX2 (Simd::available).
            Simd::Avx2 => unsafe { count_avx2(&run, maxima, todo) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Simd::Avx512 is only chosen when the CPU has AVX-512 F and BW
            // (Simd::available).
            Simd::Avx512 => unsafe { count_avx512(&run, maxima, todo) },
        };
        self.hist.add(&self.todo[..n]);
        if largest as usize >= LARGE {
            for (&v, &b) in values.iter().zip(bins) {
                let v = v.get();
                if v as usize >= LARGE && v < limit {
                    self.large.push((u32::from(b), v));
                }
            }
        }
    }

    /// Sigma clipping from the histograms: each annulus's offset and threshold.
    fn clip(&mut self) {
        self.large.sort_unstable();
        let k = self.p.min_snr;
        let mut large = &self.large[..];
        // Each annulus's counters side by side, read in order.
        self.by_bin.resize(self.bins * CAP, 0);
        for v in 1..CAP {
            let row = v * ((1 << self.shift) + ROW_PAD);
            for bin in 0..self.bins {
                self.by_bin[bin * CAP + v] = self.hist.get(row + bin);
            }
        }
        for bin in 0..self.bins {
            let n_large = large.partition_point(|&(b, _)| b as usize == bin);
            let (this, rest) = large.split_at(n_large);
            large = rest;
            // Sums of the counts, values and squares below each value (exact in u64: at most
            // 2^32 pixels of values below 63), so that a pass over a range of values is three
            // subtractions.
            let (mut n_below, mut s_below, mut s2_below) = ([0u64; CAP], [0u64; CAP], [0u64; CAP]);
            let mut counted = 0;
            for v in 1..CAP {
                let c = u64::from(self.by_bin[bin * CAP + v]);
                counted += c;
                if v < LARGE {
                    let v = v as u64;
                    n_below[v as usize + 1] = n_below[v as usize] + c;
                    s_below[v as usize + 1] = s_below[v as usize] + c * v;
                    s2_below[v as usize + 1] = s2_below[v as usize] + c * v * v;
                }
            }
            // The zeros: the usable pixels not counted.
            let zeros = u64::from(self.usable_in[bin]) - counted;
            for below in &mut n_below[1..] {
                *below += zeros;
            }
            let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
            let mut stats = None;
            for _ in 0..PASSES {
                let (mut n, mut s, mut s2) = (0u64, 0u128, 0u128);
                let first = lo.ceil().max(0.0);
                let last = hi.floor().min((LARGE - 1) as f64);
                if first <= last {
                    let (first, end) = (first as usize, last as usize + 1);
                    n += n_below[end] - n_below[first];
                    s += u128::from(s_below[end] - s_below[first]);
                    s2 += u128::from(s2_below[end] - s2_below[first]);
                }
                let from = this.partition_point(|&(_, v)| f64::from(v) < lo);
                let to = this.partition_point(|&(_, v)| f64::from(v) <= hi);
                for &(_, v) in &this[from..to.max(from)] {
                    n += 1;
                    s += u128::from(v);
                    s2 += u128::from(u64::from(v) * u64::from(v));
                }
                if n == 0 {
                    break;
                }
                let mean = as_f64(s) / n as f64;
                let sigma = (as_f64(s2) / n as f64 - mean * mean).max(0.0).sqrt();
                stats = Some((mean, sigma));
                lo = mean - k * sigma;
                hi = (mean + k * sigma).max(self.p.adc_threshold);
            }
            let (offset, threshold) = match stats {
                Some((mean, sigma)) => (mean, (mean + k * sigma).max(self.p.adc_threshold)),
                // No usable pixel: nothing can seed here anyway.
                None => (0.0, f64::INFINITY),
            };
            self.offset[bin] = offset;
            self.threshold[bin] = threshold;
            self.seed[bin] = if threshold < 0.0 {
                0
            } else if threshold >= u32::MAX as f64 {
                u32::MAX
            } else {
                threshold.floor() as u32 + 1
            };
        }
    }

    pub fn finish<T: Pixel>(&mut self, frame: &[T], limit: u32) -> Vec<Peak> {
        self.clip();
        // The pixels above their annulus's threshold, in raster order.
        self.lowest.clear();
        self.lowest.extend(
            self.seed
                .chunks(GROUP)
                .map(|g| g.iter().min().copied().unwrap_or(0)),
        );
        self.above.clear();
        self.candidates.clear();
        // Seeds are compared with chunk maxima, which stop at u16::MAX: a seed above that is
        // compared as u16::MAX.
        let cap = |seed: u32| seed.min(u32::from(u16::MAX)) as u16;
        let global = cap(self.lowest.iter().min().copied().unwrap_or(0));
        let per = BLOCK / CHUNK;
        for (block, maxima) in self.chunk_max.chunks(per).enumerate() {
            // A block whose brightest pixel is below every threshold of its annuli, as almost all
            // are, is done with a few comparisons; in the others, so are most chunks.
            let max = maxima.iter().fold(0, |m, &c| m.max(c));
            if max < global {
                continue;
            }
            let (lo, hi) = self.block_bins[block];
            if lo > hi {
                continue;
            }
            // A lower bound of the block's lowest seed, over whole groups of annuli. Along a
            // row the annulus changes by at most one a pixel, so a block within a row spans at
            // most two groups: no loop to mispredict.
            let (g0, g1) = (lo as usize / GROUP, hi as usize / GROUP);
            let seed = cap(if g1 - g0 <= 1 {
                self.lowest[g0].min(self.lowest[g1])
            } else {
                self.lowest[g0..=g1].iter().fold(u32::MAX, |m, &s| m.min(s))
            });
            if max < seed {
                continue;
            }
            for (k, &m) in maxima.iter().enumerate() {
                if m >= seed {
                    self.candidates.push((block * per + k) as u32);
                }
            }
        }
        // The candidates' pixels are far apart in memory and not in cache: reading them a few
        // chunks ahead, and without branching on them, keeps several reads in flight.
        const AHEAD: usize = 8;
        for (k, &chunk) in self.candidates.iter().enumerate() {
            if let Some(&next) = self.candidates.get(k + AHEAD) {
                let next = next as usize * CHUNK;
                prefetch(&frame[next]);
                prefetch(&self.bin_of[next]);
                prefetch(self.geo.usable_word(next));
            }
            let start = chunk as usize * CHUNK;
            let end = (start + CHUNK).min(frame.len());
            for (i, (v, &bin)) in
                (start..end).zip(frame[start..end].iter().zip(&self.bin_of[start..end]))
            {
                let v = v.get();
                if v < limit && v >= self.seed[bin as usize] && self.geo.usable(i) {
                    self.above.push(i as u32);
                }
            }
        }
        // peakfinder8 grows a peak from each pixel above threshold in raster order over the
        // 8-connected pixels above threshold not yet in a peak: the 8-connected components, in
        // order of their first pixel.
        let (nx, geo) = (self.geo.nx, &self.geo);
        let same_panel = |a: u32, b: u32| {
            let (a, b) = (a as usize, b as usize);
            geo.panel(a % nx, a / nx) == geo.panel(b % nx, b / nx)
        };
        self.components.label(&self.above, nx, true, same_panel);
        let mut peaks = Vec::new();
        let mut pixels = std::mem::take(&mut self.pixels);
        // Each peak's local background is read from a frame no longer in cache: the next
        // peaks' windows are asked for while this one is measured.
        const PEAKS_AHEAD: usize = 2;
        let (min, max) = (self.p.min_pix_count, self.p.max_pix_count);
        let sized = |members: &&[u32]| (min..=max).contains(&members.len());
        let mut ahead = self.components.iter().filter(sized).skip(PEAKS_AHEAD);
        // Peaks of the wrong size (most are single pixels) are rejected unmeasured.
        for members in self.components.iter().filter(sized) {
            if let Some(next) = ahead.next() {
                self.prefetch_window(frame, self.above[next[0] as usize] as usize);
            }
            pixels.clear();
            pixels.extend(members.iter().map(|&k| self.above[k as usize]));
            if let Some(peak) = self.measure(frame, &pixels, limit) {
                peaks.push(peak);
            }
        }
        self.pixels = pixels;
        peaks
    }

    /// Asks for the cache lines of the local background window of a peak whose first pixel
    /// is `i` (the window is centred on the centroid, which is at most a few pixels away).
    fn prefetch_window<T: Pixel>(&self, frame: &[T], i: usize) {
        let (nx, ny) = (self.geo.nx, self.geo.ny);
        let (x, y) = (i % nx, i / nx);
        let reach = 2 * self.p.local_bg_radius + 2;
        let (x0, x1) = (x.saturating_sub(reach), (x + reach).min(nx - 1));
        for y in y.saturating_sub(reach)..=(y + reach).min(ny - 1) {
            for x in [x0, x1] {
                prefetch(&frame[y * nx + x]);
                prefetch(&self.bin_of[y * nx + x]);
            }
            prefetch(self.geo.usable_word(y * nx + x0));
        }
    }

    /// Measures a peak (its pixels in raster order) against its local background; `None`
    /// when it is rejected.
    fn measure<T: Pixel>(&self, frame: &[T], pixels: &[u32], limit: u32) -> Option<Peak> {
        let p = &self.p;
        let nx = self.geo.nx;
        if pixels.len() < p.min_pix_count || pixels.len() > p.max_pix_count {
            return None;
        }
        let first = pixels[0] as usize;
        let panel = self.geo.panel(first % nx, first / nx)?;
        // First-pass centroid, weighted by counts above the annulus's offset: the centre of the
        // local background.
        let (mut sum, mut sum_x, mut sum_y) = (0f64, 0f64, 0f64);
        for &i in pixels {
            let i = i as usize;
            let w = f64::from(frame[i].get()) - self.offset[self.bin_of[i] as usize];
            sum += w;
            sum_x += w * (i % nx) as f64;
            sum_y += w * (i / nx) as f64;
        }
        if sum.abs() < 1e-10 {
            return None;
        }
        let centre = (
            (sum_x / sum.abs()).round_ties_even() as isize,
            (sum_y / sum.abs()).round_ties_even() as isize,
        );
        // Pixels of peaks are above threshold, so "below threshold" leaves them out.
        let bg = local_background(frame, nx, panel, centre, p.local_bg_radius, |i, v| {
            v < limit
                && self.geo.usable(i)
                && f64::from(v) < self.threshold[self.bin_of[i] as usize]
        })
        .unwrap_or_else(|| {
            let (cx, cy) = (
                centre.0.clamp(0, nx as isize - 1) as usize,
                centre.1.clamp(0, self.geo.ny as isize - 1) as usize,
            );
            super::LocalBackground {
                offset: self.offset[self.bin_of[cy * nx + cx] as usize],
                sigma: MIN_SIGMA,
                max: 0.0,
                pixels: 0,
            }
        });
        let (mut total, mut raw, mut raw_x, mut raw_y) = (0f64, 0f64, 0f64, 0f64);
        let (mut max_above, mut max) = (0f64, 0u32);
        let mut bbox = BBox {
            fs0: u32::MAX,
            ss0: u32::MAX,
            fs1: 0,
            ss1: 0,
        };
        for &i in pixels {
            let (x, y) = (i as usize % nx, i as usize / nx);
            let v = frame[i as usize].get();
            let vf = f64::from(v);
            total += vf - bg.offset;
            raw += vf;
            raw_x += vf * x as f64;
            raw_y += vf * y as f64;
            max_above = max_above.max(vf - bg.offset);
            max = max.max(v);
            bbox.fs0 = bbox.fs0.min(x as u32);
            bbox.ss0 = bbox.ss0.min(y as u32);
            bbox.fs1 = bbox.fs1.max(x as u32 + 1);
            bbox.ss1 = bbox.ss1.max(y as u32 + 1);
        }
        if raw.abs() < 1e-10 {
            return None;
        }
        let (fs, ss) = (raw_x / raw, raw_y / raw);
        let snr = total / bg.sigma;
        let inside = fs >= panel.x0 as f64
            && fs <= (panel.x1 - 1) as f64
            && ss >= panel.y0 as f64
            && ss <= (panel.y1 - 1) as f64;
        if snr < p.min_snr || max_above < bg.max - bg.offset || !inside {
            return None;
        }
        Some(Peak {
            fs: fs + 0.5,
            ss: ss + 0.5,
            total,
            max,
            pixels: pixels.len() as u32,
            snr,
            bbox,
        })
    }
}

/// The annuli's counters: 16-bit where no annulus has 2^16 usable pixels (every EIGER with the
/// beam on it), which halves the cache they take, else 32-bit.
enum Histogram {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl Histogram {
    fn new(len: usize, most_in_one_annulus: u32) -> Histogram {
        if most_in_one_annulus <= u32::from(u16::MAX) {
            Histogram::Narrow(vec![0; len])
        } else {
            Histogram::Wide(vec![0; len])
        }
    }

    fn clear(&mut self) {
        match self {
            Histogram::Narrow(h) => h.fill(0),
            Histogram::Wide(h) => h.fill(0),
        }
    }

    /// Adds one to each counter listed. The increments, the one part no vector unit does, run
    /// apart from the loop that finds them: a loop that does both waits on its own stores.
    fn add(&mut self, counters: &[u32]) {
        match self {
            Histogram::Narrow(h) => counters.iter().for_each(|&c| h[c as usize] += 1),
            Histogram::Wide(h) => counters.iter().for_each(|&c| h[c as usize] += 1),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> u32 {
        match self {
            Histogram::Narrow(h) => u32::from(h[i]),
            Histogram::Wide(h) => h[i],
        }
    }
}

/// One run of usable pixels for the histogram kernels: `values` are the frame's pixels
/// `at..at + values.len()`, `bins` their annuli.
struct Run<'a, T> {
    at: usize,
    values: &'a [T],
    bins: &'a [u16],
    shift: u32,
    limit: u32,
}

impl<T: Pixel> Run<'_, T> {
    /// The counter of value `v` in annulus `bin`. Values from `LARGE` up, and those at or
    /// above `limit`, go to the last row, which the clipping reads only to count zeros (they
    /// are listed apart).
    #[inline(always)]
    fn counter(&self, v: u32, bin: u16) -> u32 {
        let v = if v < self.limit {
            v.min(LARGE as u32)
        } else {
            LARGE as u32
        };
        (v << self.shift) + v * ROW_PAD as u32 + u32::from(bin)
    }

    /// [`count`] over the pixels `from..to` of the run.
    fn part(&self, from: usize, to: usize) -> Run<'_, T> {
        Run {
            at: self.at + from,
            values: &self.values[from..to],
            bins: &self.bins[from..to],
            ..*self
        }
    }
}

/// Lists in `todo` the counters that a run's nonzero pixels increment, notes each chunk's
/// maximum in `maxima`, and returns how many counters it listed and the run's largest value.
///
/// Zeros are not counted (an annulus's zeros are its usable pixels less the others), so a
/// dark frame costs little more than reading it. Every pixel's counter is written and kept
/// only when the pixel is not 0: no branch on the data to mispredict. `todo` holds at least
/// one more counter than the run has pixels.
#[inline(always)]
fn count<T: Pixel>(run: &Run<T>, maxima: &mut [u16], todo: &mut [u32]) -> (usize, u32) {
    let (mut n, mut largest) = (0, 0);
    let mut i = 0;
    while i < run.values.len() {
        let chunk = (run.at + i) / CHUNK;
        let end = ((chunk + 1) * CHUNK - run.at).min(run.values.len());
        let mut max = 0;
        for (v, &bin) in run.values[i..end].iter().zip(&run.bins[i..end]) {
            let v = v.get();
            max = max.max(v);
            todo[n] = run.counter(v, bin);
            n += usize::from(v != 0);
        }
        maxima[chunk] = maxima[chunk].max(max.min(u32::from(u16::MAX)) as u16);
        largest = largest.max(max);
        i = end;
    }
    (n, largest)
}

/// For each 8-bit mask, the positions of its set bits, in order: the lane permutation that packs
/// the lanes a mask selects to the front (what AVX-512's `vpcompressd` does in one instruction).
#[cfg(target_arch = "x86_64")]
static PACK: [[u32; 8]; 256] = {
    let mut table = [[0u32; 8]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut lane, mut k) = (0, 0);
        while lane < 8 {
            if mask >> lane & 1 != 0 {
                table[mask][k] = lane as u32;
                k += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// [`count`] eight pixels a step, as [`count_avx512`] does sixteen, packing the nonzero
/// pixels' counters with a permutation from [`PACK`].
///
/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn count_avx2<T: Pixel>(run: &Run<T>, maxima: &mut [u16], todo: &mut [u32]) -> (usize, u32) {
    use std::any::TypeId;
    use std::arch::x86_64::*;
    let wide = TypeId::of::<T>() == TypeId::of::<u32>();
    if !(wide || TypeId::of::<T>() == TypeId::of::<u16>()) {
        return count(run, maxima, todo);
    }
    let len = run.values.len();
    let head = ((CHUNK - run.at % CHUNK) % CHUNK).min(len);
    let body = head + (len - head) / CHUNK * CHUNK;
    let (mut n, mut largest) = count(&run.part(0, head), maxima, todo);
    // Each half step stores 8 counters at `todo[n..]`, n < len.
    assert!(todo.len() >= len + CHUNK);
    let large = _mm256_set1_epi32(LARGE as i32);
    let limit = _mm256_set1_epi32(run.limit as i32);
    let shift = _mm_cvtsi32_si128(run.shift as i32);
    let mut all_max = _mm256_setzero_si256();
    for i in (head..body).step_by(CHUNK) {
        let mut chunk_max = _mm256_setzero_si256();
        for half in [i, i + CHUNK / 2] {
            // SAFETY: half + 8 <= len, so the loads read 8 pixels and 8 bins of the run; T is
            // u32 or u16 (checked above), read as such.
            let (v, bins) = unsafe {
                let p = run.values.as_ptr().add(half).cast::<u8>();
                let v = if wide {
                    _mm256_loadu_si256(p.cast())
                } else {
                    _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()))
                };
                let b = _mm_loadu_si128(run.bins.as_ptr().add(half).cast());
                (v, _mm256_cvtepu16_epi32(b))
            };
            let over = _mm256_cmpeq_epi32(_mm256_max_epu32(v, limit), v);
            let value = _mm256_blendv_epi8(_mm256_min_epu32(v, large), large, over);
            let counters = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_sll_epi32(value, shift), bins),
                _mm256_slli_epi32::<ROW_PAD_LOG2>(value),
            );
            let zero = _mm256_cmpeq_epi32(v, _mm256_setzero_si256());
            let nonzero = !_mm256_movemask_ps(_mm256_castsi256_ps(zero)) as u32 & 0xff;
            // SAFETY: PACK's rows are 8 u32; n <= half < len, and todo holds len + CHUNK
            // counters.
            unsafe {
                let order = _mm256_loadu_si256(PACK[nonzero as usize].as_ptr().cast());
                _mm256_storeu_si256(
                    todo.as_mut_ptr().add(n).cast(),
                    _mm256_permutevar8x32_epi32(counters, order),
                );
            }
            n += nonzero.count_ones() as usize;
            chunk_max = _mm256_max_epu32(chunk_max, v);
        }
        let max = _mm_max_epu32(
            _mm256_castsi256_si128(chunk_max),
            _mm256_extracti128_si256(chunk_max, 1),
        );
        let max = _mm_max_epu32(max, _mm_shuffle_epi32(max, 0b01_00_11_10));
        let max = _mm_max_epu32(max, _mm_shuffle_epi32(max, 0b10_11_00_01));
        let max = _mm_cvtsi128_si32(max) as u32;
        let chunk = (run.at + i) / CHUNK;
        maxima[chunk] = maxima[chunk].max(max.min(u32::from(u16::MAX)) as u16);
        all_max = _mm256_max_epu32(all_max, chunk_max);
    }
    let all = _mm_max_epu32(
        _mm256_castsi256_si128(all_max),
        _mm256_extracti128_si256(all_max, 1),
    );
    let all = _mm_max_epu32(all, _mm_shuffle_epi32(all, 0b01_00_11_10));
    let all = _mm_max_epu32(all, _mm_shuffle_epi32(all, 0b10_11_00_01));
    largest = largest.max(_mm_cvtsi128_si32(all) as u32);
    let (tail_n, tail_largest) = count(&run.part(body, len), maxima, &mut todo[n..]);
    (n + tail_n, largest.max(tail_largest))
}

/// [`count`] a chunk per step: the counters of the chunk's 16 pixels worked out together, the
/// nonzero ones packed to the front (`vpcompressd`) and stored, with no branch on the data.
/// The partial chunks at the run's ends go through [`count`].
///
/// # Safety
/// The CPU must run AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn count_avx512<T: Pixel>(
    run: &Run<T>,
    maxima: &mut [u16],
    todo: &mut [u32],
) -> (usize, u32) {
    use std::any::TypeId;
    use std::arch::x86_64::*;
    let wide = TypeId::of::<T>() == TypeId::of::<u32>();
    if !(wide || TypeId::of::<T>() == TypeId::of::<u16>()) {
        return count(run, maxima, todo);
    }
    let len = run.values.len();
    let head = ((CHUNK - run.at % CHUNK) % CHUNK).min(len);
    let body = head + (len - head) / CHUNK * CHUNK;
    let (mut n, mut largest) = count(&run.part(0, head), maxima, todo);
    // Each step stores 16 counters at `todo[n..]`, n < len.
    assert!(todo.len() >= len + CHUNK);
    let large = _mm512_set1_epi32(LARGE as i32);
    let limit = _mm512_set1_epi32(run.limit as i32);
    let shift = _mm_cvtsi32_si128(run.shift as i32);
    let mut all_max = _mm512_setzero_si512();
    for i in (head..body).step_by(CHUNK) {
        // SAFETY: i + CHUNK <= len, so the loads read 16 pixels and 16 bins of the run; T is
        // u32 or u16 (checked above), read as such.
        let (v, bins) = unsafe {
            let p = run.values.as_ptr().add(i).cast::<u8>();
            let v = if wide {
                // Two 32-byte loads: a frame from the allocator is 16 bytes off a cache line,
                // and one 64-byte load then always spans two lines (measured: the dark 16M
                // frame takes 15 ms instead of 11).
                let lo = _mm256_loadu_si256(p.cast());
                let hi = _mm256_loadu_si256(p.add(32).cast());
                _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
            } else {
                _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()))
            };
            let b = _mm256_loadu_si256(run.bins.as_ptr().add(i).cast());
            (v, _mm512_cvtepu16_epi32(b))
        };
        let nonzero = _mm512_test_epi32_mask(v, v);
        let over = _mm512_cmpge_epu32_mask(v, limit);
        let value = _mm512_mask_mov_epi32(_mm512_min_epu32(v, large), over, large);
        let counters = _mm512_add_epi32(
            _mm512_add_epi32(_mm512_sll_epi32(value, shift), bins),
            _mm512_slli_epi32::<{ ROW_PAD_LOG2 as u32 }>(value),
        );
        // SAFETY: n <= i - head + head = i < len, and todo holds len + CHUNK counters.
        unsafe {
            _mm512_storeu_si512(
                todo.as_mut_ptr().add(n).cast(),
                _mm512_maskz_compress_epi32(nonzero, counters),
            );
        }
        n += nonzero.count_ones() as usize;
        let max = _mm256_max_epu32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
        let max = _mm_max_epu32(
            _mm256_castsi256_si128(max),
            _mm256_extracti128_si256(max, 1),
        );
        let max = _mm_max_epu32(max, _mm_shuffle_epi32(max, 0b01_00_11_10));
        let max = _mm_max_epu32(max, _mm_shuffle_epi32(max, 0b10_11_00_01));
        let max = _mm_cvtsi128_si32(max) as u32;
        let chunk = (run.at + i) / CHUNK;
        maxima[chunk] = maxima[chunk].max(max.min(u32::from(u16::MAX)) as u16);
        all_max = _mm512_max_epu32(all_max, v);
    }
    largest = largest.max(_mm512_reduce_max_epu32(all_max));
    let (tail_n, tail_largest) = count(&run.part(body, len), maxima, &mut todo[n..]);
    (n + tail_n, largest.max(tail_largest))
}

/// `v` rounded to the nearest f64, without the library call that 128-bit conversion is when it
/// fits in 64 bits (as the sums of an annulus almost always do).
#[inline]
fn as_f64(v: u128) -> f64 {
    u64::try_from(v).map_or(v as f64, |v| v as f64)
}

/// Asks for the cache line holding `value`, without waiting for it.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching reads nothing architecturally; SSE is part of x86_64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peaks::{Finder, PeakFinder, Rect};
    use crate::sim::{simulate, Detector, FrameSpec, IceRing, PixelType};

    /// peakfinder8's clipping with inclusive bounds, straight from the values of each annulus.
    fn naive_annuli(r: &Radial, frame: &[u32], limit: u32) -> Vec<Option<(f64, f64)>> {
        let mut values = vec![Vec::new(); r.bins];
        for (i, &v) in frame.iter().enumerate() {
            if r.geo.usable(i) && v < limit {
                values[r.bin_of[i] as usize].push(f64::from(v));
            }
        }
        let k = r.p.min_snr;
        values
            .iter()
            .map(|vs| {
                let (mut lo, mut hi, mut stats) = (f64::NEG_INFINITY, f64::INFINITY, None);
                for _ in 0..PASSES {
                    let kept: Vec<f64> =
                        vs.iter().copied().filter(|&v| v >= lo && v <= hi).collect();
                    if kept.is_empty() {
                        break;
                    }
                    let n = kept.len() as f64;
                    let mean = kept.iter().sum::<f64>() / n;
                    let var = kept.iter().map(|v| v * v).sum::<f64>() / n - mean * mean;
                    let sigma = var.max(0.0).sqrt();
                    stats = Some((mean, (mean + k * sigma).max(r.p.adc_threshold)));
                    lo = mean - k * sigma;
                    hi = (mean + k * sigma).max(r.p.adc_threshold);
                }
                stats
            })
            .collect()
    }

    #[test]
    fn histogram_clipping_is_exact_on_every_kernel() {
        // Spots, hot pixels and an ice ring put values far above the histograms' range.
        let mut spec = FrameSpec::new(Detector::EIGER2_1M, PixelType::U32, 3.0, 60, 5);
        spec.background_edge = 0.2;
        spec.hot_pixels = 40;
        spec.beamstop_radius = 15.0;
        spec.dead_fraction = 0.001;
        spec.ice_rings = vec![IceRing {
            radius: 300.0,
            width: 3.0,
            photons: 40.0,
        }];
        let f = simulate(&spec);
        let layout = Layout::detect(f.nx, f.ny, Some(&f.mask)).unwrap();
        let wide = f.pixels.clone();
        let narrow: Vec<u16> = f.pixels.iter().map(|&v| v.min(65535) as u16).collect();
        let narrow_wide: Vec<u32> = narrow.iter().map(|&v| u32::from(v)).collect();
        // Each kernel, on uint32 and uint16 frames, with the default overload (the type's
        // maximum) and one below the histograms' range, which must keep those pixels out.
        for (limit, frame) in [
            (u32::MAX, &wide),
            (40, &wide),
            (u32::from(u16::MAX), &narrow_wide),
        ] {
            let mut peaks = Vec::new();
            for simd in Simd::available() {
                let mut r =
                    Radial::new(RadialParams::default(), layout.clone(), Some(&f.mask)).unwrap();
                r.simd = simd;
                r.begin();
                // In pieces that end mid-row, as a decoder hands them over.
                for (k, piece) in frame.chunks(3001).enumerate() {
                    if limit == u32::from(u16::MAX) {
                        r.feed(k * 3001, &narrow[k * 3001..][..piece.len()], limit);
                    } else {
                        r.feed(k * 3001, piece, limit);
                    }
                }
                peaks.push(if limit == u32::from(u16::MAX) {
                    r.finish(&narrow, limit)
                } else {
                    r.finish(frame, limit)
                });
                assert!(!r.large.is_empty() || limit < LARGE as u32);
                let naive = naive_annuli(&r, frame, limit);
                for (bin, expected) in naive.iter().enumerate() {
                    let (offset, threshold) = (r.offset[bin], r.threshold[bin]);
                    match expected {
                        Some((o, t)) => assert!(
                            (offset - o).abs() < 1e-9 && (threshold - t).abs() < 1e-9,
                            "{simd:?} limit {limit} annulus {bin}: ({offset}, {threshold}) \
                             against ({o}, {t})"
                        ),
                        None => assert_eq!(threshold, f64::INFINITY, "annulus {bin}"),
                    }
                }
            }
            // Every kernel finds the same peaks.
            assert!(peaks[0].len() > 40, "limit {limit}: {}", peaks[0].len());
            assert!(peaks.windows(2).all(|w| w[0] == w[1]), "limit {limit}");
        }
    }

    #[test]
    fn narrow_and_wide_histograms_count_alike() {
        // 16-bit counters only where no annulus can reach 2^16 pixels; both count the same.
        let (mut narrow, mut wide) = (Histogram::new(8, 65535), Histogram::new(8, 65536));
        assert!(matches!(narrow, Histogram::Narrow(_)) && matches!(wide, Histogram::Wide(_)));
        let counters: Vec<u32> = (0..65535u32).map(|k| k % 3 * 2).collect();
        for h in [&mut narrow, &mut wide] {
            h.add(&counters);
            h.add(&[7]);
        }
        for i in 0..8 {
            assert_eq!(narrow.get(i), wide.get(i), "counter {i}");
        }
        assert_eq!(
            (narrow.get(0), narrow.get(2), narrow.get(7)),
            (21845, 21845, 1)
        );
    }

    /// A `nx x ny` frame with `pixels` set, and a finder over it with the panels given.
    fn frame(nx: usize, ny: usize, pixels: &[(usize, usize, u32)]) -> Vec<u32> {
        let mut f = vec![0u32; nx * ny];
        for &(x, y, v) in pixels {
            f[y * nx + x] = v;
        }
        f
    }

    fn radial(layout: Layout, mask: Option<&[u32]>) -> PeakFinder {
        PeakFinder::with_layout(Finder::Radial(RadialParams::default()), layout, mask).unwrap()
    }

    #[test]
    fn a_dark_annulus_still_holds_peaks() {
        // Every pixel of every annulus is 0 but for one small spot: peakfinder8's strict
        // clipping would leave that annulus no pixels and an infinite threshold.
        let f = frame(
            64,
            64,
            &[(20, 20, 6), (21, 20, 3), (20, 21, 3), (19, 20, 2)],
        );
        let mut pf = radial(Layout::whole(64, 64), None);
        let found = pf.search(&f).unwrap();
        assert_eq!(found.peaks.len(), 1, "{found:?}");
        let p = found.peaks[0];
        assert_eq!((p.pixels, p.max, p.total), (4, 6, 14.0));
        assert!(
            (p.fs - (20.5 + 1.0 / 14.0)).abs() < 1e-12
                && (p.ss - (20.5 + 3.0 / 14.0)).abs() < 1e-12
        );
        assert_eq!(
            p.bbox,
            BBox {
                fs0: 19,
                ss0: 20,
                fs1: 22,
                ss1: 22
            }
        );
    }

    fn two_panels() -> Layout {
        // Columns 0-29 and 34-63, a 4-pixel gap between.
        Layout {
            nx: 64,
            ny: 64,
            columns: vec![(0, 30), (34, 64)],
            rows: vec![(0, 64)],
        }
    }

    #[test]
    fn module_border_pixels_seed() {
        // The spot's only bright pixels are in the first column of the right module, where
        // peakfinder8 never starts a peak.
        let f = frame(64, 64, &[(34, 10, 8), (34, 11, 6)]);
        let found = radial(two_panels(), None).search(&f).unwrap();
        assert_eq!(found.peaks.len(), 1);
        assert_eq!(found.peaks[0].bbox.fs0, 34);
    }

    #[test]
    fn the_local_background_stays_in_its_module() {
        // Left module dark, right module bright (20). A spot at the left module's edge: its
        // local background is the dark pixels alone, so its total is its counts.
        let mut f = frame(64, 64, &[(29, 5, 200), (28, 5, 150)]);
        for y in 0..64 {
            for x in 34..64 {
                f[y * 64 + x] = 20;
            }
        }
        let found = radial(two_panels(), None).search(&f).unwrap();
        assert_eq!(found.peaks.len(), 1, "{found:?}");
        assert_eq!(found.peaks[0].total, 350.0);
        let Rect { x0, x1, .. } = two_panels().panels().next().unwrap();
        assert!(found.peaks[0].bbox.fs0 as usize >= x0 && found.peaks[0].bbox.fs1 as usize <= x1);
    }

    #[test]
    fn masked_pixels_never_seed_or_grow() {
        let f = frame(
            64,
            64,
            &[
                (10, 10, 50),
                (11, 10, 40),
                (12, 10, 35),
                (40, 40, 50),
                (41, 40, 40),
                (42, 40, 30),
            ],
        );
        let mut mask = vec![0u32; 64 * 64];
        // The first spot masked but for one pixel (too small alone), the second's brightest
        // pixel masked.
        mask[10 * 64 + 10] = 2;
        mask[10 * 64 + 11] = 2;
        mask[40 * 64 + 40] = 1 << 8;
        let found = radial(Layout::whole(64, 64), Some(&mask))
            .search(&f)
            .unwrap();
        assert_eq!(found.peaks.len(), 1, "{found:?}");
        assert_eq!((found.peaks[0].pixels, found.peaks[0].max), (2, 40));
        // Pixels at the overload value count as masked too.
        let mut pf = radial(Layout::whole(64, 64), None);
        pf.set_overload(Some(45));
        let found = pf.search(&f).unwrap();
        assert_eq!(
            found.peaks.iter().map(|p| p.max).collect::<Vec<_>>(),
            [40, 40]
        );
    }

    #[test]
    fn parameters_are_checked() {
        let bad = |p: RadialParams| Radial::new(p, Layout::whole(8, 8), None).err().unwrap();
        assert!(matches!(
            bad(RadialParams {
                min_pix_count: 5,
                max_pix_count: 4,
                ..RadialParams::default()
            }),
            PeakError::BadParameter {
                name: "min_pix_count",
                ..
            }
        ));
        assert!(matches!(
            bad(RadialParams {
                min_snr: f64::NAN,
                ..RadialParams::default()
            }),
            PeakError::BadParameter {
                name: "min_snr",
                ..
            }
        ));
    }
}
