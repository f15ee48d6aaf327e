//! The radial finder: peakfinder8's semantics, with exact statistics and its failures fixed.
//!
//! 1. Every usable pixel between the resolution limits falls in the annulus `rint(r)`, `r` its
//!    centre's distance from the beam. Each annulus gets a mean and standard deviation by sigma
//!    clipping: five passes, each over the values within `min_snr` standard deviations of the
//!    previous pass's mean (the upper bound raised to `adc_threshold`). Counts are integers, so
//!    one pass over the frame fills a histogram per annulus (small counts) plus a list of the
//!    rare large ones, and the five passes read only those.
//! 2. An annulus's threshold is `max(adc_threshold, mean + min_snr * sigma)`. peakfinder8 grows
//!    a peak from each pixel above threshold, in raster order, over the 8-connected pixels above
//!    their own annulus's threshold in its module that are in no peak yet (and keeps them when
//!    the peak is rejected): the peaks are the 8-connected components of the pixels above
//!    threshold. They are found that way here, from the pixels above threshold of the blocks of
//!    64 whose maximum (noted in the first pass) reaches the lowest threshold of their annuli.
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
/// The second pass looks at blocks of this many pixels (row-major) whose maximum the first pass
/// noted.
const BLOCK: usize = 64;
/// Counters for zeros, which are not needed (see `fill`), taken in turn so that a run of zeros
/// does not wait on one counter.
const JUNK: usize = 16;

pub(crate) struct Radial {
    p: RadialParams,
    geo: Geometry,
    /// Each pixel's annulus: reading 2 bytes a pixel costs less than working it out.
    bin_of: Vec<u16>,
    bins: usize,
    /// Usable pixels per annulus.
    usable_in: Vec<u32>,
    /// Per block: its largest value this frame, and the range of its usable pixels' annuli
    /// (empty when it has none).
    block_max: Vec<u32>,
    block_bins: Vec<(u16, u16)>,
    /// Range minima of `seed`.
    lowest: Vec<u32>,
    /// `CAP x bins` counts (the zeros' row holds the junk counters), and (bin, value) of the
    /// values from `LARGE` up.
    hist: Vec<u32>,
    large: Vec<(u32, u32)>,
    offset: Vec<f64>,
    threshold: Vec<f64>,
    /// The smallest count above the threshold, per bin (`u32::MAX`: none).
    seed: Vec<u32>,
    simd: Simd,
    /// This frame's pixels above threshold, their components, and one peak's pixels.
    above: Vec<u32>,
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
        Ok(Radial {
            p,
            geo,
            usable_in,
            block_max: vec![0; block_bins.len()],
            block_bins,
            lowest: Vec::new(),
            bin_of,
            bins,
            hist: vec![0; (bins * CAP).max(JUNK)],
            large: Vec::new(),
            offset: vec![0.0; bins],
            threshold: vec![0.0; bins],
            seed: vec![0; bins],
            simd: Simd::detect(),
            above: Vec::new(),
            components: Components::default(),
            pixels: Vec::new(),
        })
    }

    #[cfg(test)]
    pub fn params(&self) -> &RadialParams {
        &self.p
    }

    pub fn begin(&mut self) {
        self.hist.fill(0);
        self.large.clear();
        self.block_max.fill(0);
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
    /// annuli's histograms, and notes each block's maximum.
    fn fill<T: Pixel>(&mut self, at: usize, values: &[T], limit: u32) {
        let bins = &self.bin_of[at..at + values.len()];
        let stride = self.bins;
        let (hist, block_max) = (&mut self.hist[..], &mut self.block_max[..]);
        let largest = match self.simd {
            Simd::Baseline => count(hist, stride, block_max, at, values, bins),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Simd::Avx2 is only chosen when the CPU has AVX2 (Simd::detect).
            Simd::Avx2 => unsafe { count_avx2(hist, stride, block_max, at, values, bins) },
        };
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
        for bin in 0..self.bins {
            let n_large = large.partition_point(|&(b, _)| b as usize == bin);
            let (this, rest) = large.split_at(n_large);
            large = rest;
            let mut hist = [0u64; CAP];
            for (v, h) in hist.iter_mut().enumerate().skip(1) {
                *h = u64::from(self.hist[v * self.bins + bin]);
            }
            hist[0] = u64::from(self.usable_in[bin]) - hist[1..].iter().sum::<u64>();
            let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
            let mut stats = None;
            for _ in 0..PASSES {
                let (mut n, mut s, mut s2) = (0u64, 0u128, 0u128);
                let first = lo.ceil().max(0.0);
                let last = hi.floor().min((LARGE - 1) as f64);
                if first <= last {
                    let (first, last) = (first as usize, last as usize);
                    for (v, &c) in hist.iter().enumerate().take(last + 1).skip(first) {
                        n += c;
                        s += u128::from(c * v as u64);
                        s2 += u128::from(c * (v * v) as u64);
                    }
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
                let mean = s as f64 / n as f64;
                let sigma = (s2 as f64 / n as f64 - mean * mean).max(0.0).sqrt();
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
        let lowest = RangeMin::new(&self.seed, &mut self.lowest);
        self.above.clear();
        for block in 0..self.block_max.len() {
            // A block whose brightest pixel is below every threshold of its annuli, as almost all
            // are, is done with one comparison.
            let (max, (lo, hi)) = (self.block_max[block], self.block_bins[block]);
            if lo > hi || max < lowest.min(&self.lowest, lo as usize, hi as usize) {
                continue;
            }
            let start = block * BLOCK;
            let end = (start + BLOCK).min(frame.len());
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
        for members in self.components.iter() {
            pixels.clear();
            pixels.extend(members.iter().map(|&k| self.above[k as usize]));
            if let Some(peak) = self.measure(frame, &pixels, limit) {
                peaks.push(peak);
            }
        }
        self.pixels = pixels;
        peaks
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

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn count_avx2<T: Pixel>(
    hist: &mut [u32],
    stride: usize,
    block_max: &mut [u32],
    at: usize,
    values: &[T],
    bins: &[u16],
) -> u32 {
    count(hist, stride, block_max, at, values, bins)
}

/// Counts the values `at..at + values.len()` of the frame in their annuli's histograms, notes
/// each block's maximum, and returns the largest value.
///
/// The counters of one value for all annuli are side by side (`hist[value * stride + bin]`):
/// along a row the annulus changes every pixel or two, the value much less, so the counters in
/// use stay in a few cache lines. Zeros are not needed (an annulus's zeros are its usable pixels
/// less the others): on a dark frame most runs of 16 pixels are all 0 and skipped at once, and
/// in the others a zero goes to one of `JUNK` counters in turn rather than cost a branch (or
/// wait on one counter). Values from `LARGE` up go to the last value's counters, which the
/// clipping ignores: they are listed apart.
#[inline(always)]
fn count<T: Pixel>(
    hist: &mut [u32],
    stride: usize,
    block_max: &mut [u32],
    at: usize,
    values: &[T],
    bins: &[u16],
) -> u32 {
    let mut largest = 0;
    let mut i = at;
    while i < at + values.len() {
        let block = i / BLOCK;
        let end = ((block + 1) * BLOCK).min(at + values.len());
        let max = values[i - at..end - at]
            .iter()
            .map(|v| v.get())
            .max()
            .unwrap_or(0);
        block_max[block] = block_max[block].max(max);
        largest = largest.max(max);
        i = end;
    }
    let clamp = largest as usize >= LARGE;
    for (vs, bs) in values.chunks(JUNK).zip(bins.chunks(JUNK)) {
        if vs.iter().fold(0, |any, v| any | v.get()) == 0 {
            continue;
        }
        for (k, (v, &bin)) in vs.iter().zip(bs).enumerate() {
            let v = v.get() as usize;
            let v = if clamp { v.min(CAP - 1) } else { v };
            hist[if v == 0 { k } else { v * stride + bin as usize }] += 1;
        }
    }
    largest
}

/// Minima of any range of a slice in two lookups (a sparse table: level `l` holds the minima of
/// the ranges of `2^l`).
struct RangeMin {
    len: usize,
}

impl RangeMin {
    fn new(values: &[u32], table: &mut Vec<u32>) -> RangeMin {
        let len = values.len();
        table.clear();
        table.extend_from_slice(values);
        let mut width = 1;
        while 2 * width <= len {
            let prev = table.len() - len;
            for i in 0..len {
                let j = (i + width).min(len - 1);
                let m = table[prev + i].min(table[prev + j]);
                table.push(m);
            }
            width *= 2;
        }
        RangeMin { len }
    }

    /// The minimum of `values[lo..=hi]`.
    #[inline]
    fn min(&self, table: &[u32], lo: usize, hi: usize) -> u32 {
        let level = (hi - lo + 1).ilog2() as usize;
        let row = &table[level * self.len..];
        row[lo].min(row[hi + 1 - (1 << level)])
    }
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
        let mut simds = vec![Simd::Baseline];
        if Simd::detect() != Simd::Baseline {
            simds.push(Simd::detect());
        }
        let mut peaks = Vec::new();
        for simd in simds {
            let mut r =
                Radial::new(RadialParams::default(), layout.clone(), Some(&f.mask)).unwrap();
            r.simd = simd;
            r.begin();
            // In pieces that end mid-row, as a decoder hands them over.
            for (k, piece) in f.pixels.chunks(3001).enumerate() {
                r.feed(k * 3001, piece, u32::MAX);
            }
            peaks.push(r.finish(&f.pixels, u32::MAX));
            assert!(!r.large.is_empty());
            let naive = naive_annuli(&r, &f.pixels, u32::MAX);
            for (bin, expected) in naive.iter().enumerate() {
                let (offset, threshold) = (r.offset[bin], r.threshold[bin]);
                match expected {
                    Some((o, t)) => assert!(
                        (offset - o).abs() < 1e-9 && (threshold - t).abs() < 1e-9,
                        "{simd:?} annulus {bin}: ({offset}, {threshold}) against ({o}, {t})"
                    ),
                    None => assert_eq!(threshold, f64::INFINITY, "annulus {bin}"),
                }
            }
        }
        // The baseline and the AVX2 kernels find the same peaks.
        assert!(peaks[0].len() > 40);
        assert!(peaks.windows(2).all(|w| w[0] == w[1]));
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
