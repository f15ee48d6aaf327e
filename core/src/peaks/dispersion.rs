//! The dispersion finder: DIALS's `dispersion` and `dispersion_extended` thresholds, and its
//! spot filters.
//!
//! For each usable pixel, over the usable pixels of the `(2 kx + 1) x (2 ky + 1)` window around
//! it (cut at the module's edges), with `m` pixels, sum `x` and sum of squares `y`:
//!
//! - dispersion: the window is over-dispersed for Poisson counts,
//!   `m y - x^2 > gain x (m - 1 + sigma_background sqrt(2 (m - 1)))` (variance over mean above
//!   `gain (1 + sigma_background sqrt(2 / (m - 1)))`), and the pixel stands out,
//!   `m v - x > sigma_strong sqrt(gain x m)` (above `mean + sigma_strong sqrt(gain mean)`), with
//!   `v > global_threshold` and `m >= min_local`;
//! - dispersion_extended: the over-dispersed pixels (masked ones count as over-dispersed) are
//!   eroded: only those with no other pixel within `min(kx, ky) - 1` (Chebyshev) remain, the
//!   core. A core pixel is strong when `v > global_threshold` and
//!   `v >= mean + sigma_strong sqrt(gain mean)`, the mean taken over the
//!   `(2 kx + 5) x (2 ky + 5)` window's usable pixels outside the core (0 with fewer than 2).
//!
//! Strong pixels form 4-connected spots, kept with `min_spot_size..=max_spot_size` pixels and
//! their brightest pixel within `max_separation` of their centroid. A frame with more than
//! `max_strong_fraction` of its pixels strong is rejected.
//!
//! DIALS keeps full-frame summed-area tables (12 bytes a pixel). Here the window sums slide: the
//! column sums over the window's rows are updated as each row arrives (one row in, one out), and
//! a row's window sums are differences of prefix sums of the column sums. The sum of squares,
//! which only the few pixels that pass the cheaper tests need, is summed directly for those in
//! `dispersion`. Rows are taken as the decoder completes them, so the whole first pass runs
//! while the frame is in cache; `dispersion_extended`'s erosion and second mean touch only the
//! sparse over-dispersed pixels.
//!
//! Where this differs from DIALS: windows stop at module edges (DIALS stops at the image's; with
//! EIGER gaps wider than the window, the result is the same); pixels at or above the overload
//! value, or at or above 2^24 counts (DIALS ignores those in its tables), count as masked; sums
//! are exact integers (DIALS stores its tables in single precision).

use super::geometry::{Geometry, Layout};
use super::label::Components;
use super::{local_background, BBox, Marks, Peak, PeakError, Pixel, Simd, MIN_SIGMA};

/// DIALS's spot-finding parameters for the dispersion thresholds, with DIALS's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct DispersionParams {
    /// `dispersion_extended` rather than `dispersion`.
    pub extended: bool,
    pub gain: f64,
    /// Half sizes of the window along fast and slow (`kernel_size`): 3, 3 is a 7 x 7 window.
    pub kernel: (usize, usize),
    pub sigma_background: f64,
    pub sigma_strong: f64,
    /// Fewest usable pixels in a window for it to count (`min_local`); 0 means the whole window.
    pub min_local: usize,
    pub global_threshold: f64,
    pub min_spot_size: usize,
    pub max_spot_size: usize,
    /// Largest distance from a spot's brightest pixel to its centroid, pixels.
    pub max_separation: f64,
    /// A frame with more strong pixels than this fraction is rejected
    /// (`max_strong_pixel_fraction`).
    pub max_strong_fraction: f64,
}

impl Default for DispersionParams {
    fn default() -> Self {
        DispersionParams {
            extended: false,
            gain: 1.0,
            kernel: (3, 3),
            sigma_background: 6.0,
            sigma_strong: 3.0,
            min_local: 2,
            global_threshold: 0.0,
            min_spot_size: 3,
            max_spot_size: 1000,
            max_separation: 2.0,
            max_strong_fraction: 0.25,
        }
    }
}

impl DispersionParams {
    pub fn extended() -> Self {
        DispersionParams {
            extended: true,
            ..Self::default()
        }
    }
}

/// DIALS ignores counts from 2^24 up in its sums; so do we (and the sums then fit).
const BIG: u32 = 1 << 24;
/// Radius passed to the local background of a spot's SNR (peakfinder8's default).
const BACKGROUND_RADIUS: usize = 3;

pub(crate) struct Dispersion {
    p: DispersionParams,
    geo: Geometry,
    nx: usize,
    ny: usize,
    kx: usize,
    ky: usize,
    min_count: u32,
    /// Smallest count above `global_threshold`.
    above: u32,
    /// Per column, the window's first column and one past its last (cut at the module).
    win_lo: Vec<u32>,
    win_hi: Vec<u32>,
    /// The last `2 ky + 2` rows as arrived: counts (0 where unusable) and usable flags.
    ring: Vec<u32>,
    ring_ok: Vec<u8>,
    /// Sums over the window's rows, per column, then over the window, per pixel of a row.
    col_m: Vec<u16>,
    col_x: Vec<u32>,
    col_y: Vec<u64>,
    win_m: Vec<u16>,
    win_x: Vec<u32>,
    win_y: Vec<u64>,
    scratch_m: Vec<u16>,
    scratch_x: Vec<u32>,
    scratch_y: Vec<u64>,
    /// A row's pixels that passed the vectorised test.
    flags: Vec<u8>,
    /// Their positions.
    found: Vec<u32>,
    /// A row of zeros, to slide one row in without one out, or out without in.
    zeros: Vec<u32>,
    zeros_ok: Vec<u8>,
    /// The baseline kernels or the AVX2 ones.
    simd: Simd,
    /// Rows `[sum_lo, sum_hi)` are in the column sums.
    sum_lo: usize,
    sum_hi: usize,
    /// Elements of the frame that have arrived, and the next row to threshold.
    arrived: usize,
    next_out: usize,
    limit: u32,
    /// Strong pixels (`dispersion`) or over-dispersed ones (`dispersion_extended`), in order.
    hits: Vec<u32>,
    marks: Marks,
    components: Components,
}

impl Dispersion {
    pub fn new(
        p: DispersionParams,
        layout: Layout,
        mask: Option<&[u32]>,
    ) -> Result<Dispersion, PeakError> {
        let bad = |name, why: &str| {
            Err(PeakError::BadParameter {
                name,
                why: why.to_string(),
            })
        };
        let (kx, ky) = p.kernel;
        if !(1..=50).contains(&kx) || !(1..=50).contains(&ky) {
            return bad("kernel", "half sizes must be 1 to 50");
        }
        let window = (2 * kx + 1) * (2 * ky + 1);
        let min_count = match p.min_local {
            0 => window,
            n if n >= 2 && n <= window => n,
            _ => {
                return bad(
                    "min_local",
                    "must be 0 or from 2 to the window's pixel count",
                )
            }
        };
        if !(p.gain > 0.0 && p.gain.is_finite()) {
            return bad("gain", "must be a positive number");
        }
        if !(p.sigma_background >= 0.0 && p.sigma_strong >= 0.0) {
            return bad("sigma_background/sigma_strong", "must be at least 0");
        }
        if !(p.global_threshold >= 0.0 && p.global_threshold.is_finite()) {
            return bad("global_threshold", "must be a finite number of at least 0");
        }
        if p.min_spot_size == 0 || p.min_spot_size > p.max_spot_size {
            return bad(
                "min_spot_size",
                "must be at least 1 and at most max_spot_size",
            );
        }
        if !(0.0..=1.0).contains(&p.max_strong_fraction) {
            return bad("max_strong_fraction", "must be from 0 to 1");
        }
        if p.max_separation.is_nan() {
            return bad("max_separation", "must be a number");
        }
        let geo = Geometry::new(layout.clone(), mask, |_, _| true)?;
        let (nx, ny) = (geo.nx, geo.ny);
        let (mut win_lo, mut win_hi) = (vec![0u32; nx], vec![0u32; nx]);
        for (x, (lo, hi)) in win_lo.iter_mut().zip(&mut win_hi).enumerate() {
            let (x0, x1) = layout
                .columns
                .iter()
                .copied()
                .find(|&(a, b)| (a..b).contains(&x))
                .unwrap_or((x, x + 1));
            *lo = x.saturating_sub(kx).max(x0) as u32;
            *hi = (x + kx + 1).min(x1) as u32;
        }
        let rows = 2 * ky + 2;
        let levels = (2 * kx + 1).ilog2() as usize + 1;
        Ok(Dispersion {
            above: p.global_threshold.floor() as u32 + 1,
            min_count: min_count as u32,
            p,
            kx,
            ky,
            win_lo,
            win_hi,
            ring: vec![0; rows * nx],
            ring_ok: vec![0; rows * nx],
            col_m: vec![0; nx],
            col_x: vec![0; nx],
            col_y: vec![0; nx],
            win_m: vec![0; nx],
            win_x: vec![0; nx],
            win_y: vec![0; nx],
            scratch_m: vec![0; levels * nx],
            scratch_x: vec![0; levels * nx],
            scratch_y: vec![0; levels * nx],
            flags: vec![0; nx],
            found: Vec::new(),
            zeros: vec![0; nx],
            zeros_ok: vec![0; nx],
            simd: Simd::detect(),
            sum_lo: 0,
            sum_hi: 0,
            arrived: 0,
            next_out: 0,
            limit: 0,
            hits: Vec::new(),
            marks: Marks::new(nx * ny),
            components: Components::default(),
            geo,
            nx,
            ny,
        })
    }

    #[cfg(test)]
    pub fn params(&self) -> &DispersionParams {
        &self.p
    }

    pub fn begin(&mut self) {
        self.arrived = 0;
        self.next_out = 0;
        self.sum_lo = 0;
        self.sum_hi = 0;
        self.hits.clear();
    }

    /// Takes the frame's pixels `first..first + px.len()` (in order, continuing the last call),
    /// and thresholds every row whose window is complete.
    pub fn feed<T: Pixel>(&mut self, first: usize, px: &[T], limit: u32) {
        debug_assert_eq!(first, self.arrived, "pixels arrive in order");
        self.limit = limit.min(BIG);
        let nx = self.nx;
        let rows = 2 * self.ky + 2;
        let mut at = 0;
        while at < px.len() {
            let i = self.arrived;
            let (y, x) = (i / nx, i % nx);
            let n = (nx - x).min(px.len() - at);
            let slot = (y % rows) * nx;
            let limit = self.limit;
            for ((v, ok), &p) in self.ring[slot + x..slot + x + n]
                .iter_mut()
                .zip(&mut self.ring_ok[slot + x..slot + x + n])
                .zip(&px[at..at + n])
            {
                let p = p.get();
                *ok = u8::from(p < limit);
                *v = if p < limit { p } else { 0 };
            }
            at += n;
            self.arrived += n;
            if x + n == nx {
                self.row_arrived(y);
            }
        }
    }

    /// Row `y` is complete: apply the mask to it and threshold the rows that waited for it.
    fn row_arrived(&mut self, y: usize) {
        let nx = self.nx;
        let slot = (y % (2 * self.ky + 2)) * nx;
        let (v, ok) = (
            &mut self.ring[slot..slot + nx],
            &mut self.ring_ok[slot..slot + nx],
        );
        let mut x = 0;
        for &(a, b) in self.geo.runs(y).iter().chain([&(nx as u32, nx as u32)]) {
            v[x..a as usize].fill(0);
            ok[x..a as usize].fill(0);
            x = b as usize;
        }
        while self.next_out <= y {
            let j = self.next_out;
            let (_, y1) = self.band(j);
            if (j + self.ky).min(y1 - 1) > y {
                break;
            }
            self.threshold_row(j);
            self.next_out += 1;
        }
    }

    /// The module row `[y0, y1)` holding row `j` (a gap row is a band of its own).
    fn band(&self, j: usize) -> (usize, usize) {
        match self.geo.panel_rows(j) {
            Some(r) => r,
            None => (j, j + 1),
        }
    }

    /// Moves the column sums to rows `[lo, hi)`, which lie within one band.
    fn slide(&mut self, lo: usize, hi: usize) {
        let nx = self.nx;
        let rows = 2 * self.ky + 2;
        let squares = true;
        if lo >= self.sum_hi || lo < self.sum_lo {
            self.col_m.fill(0);
            self.col_x.fill(0);
            self.col_y.fill(0);
            self.sum_lo = lo;
            self.sum_hi = lo;
        }
        // One row in and one out, the steady state, in one pass.
        while self.sum_hi < hi && self.sum_lo < lo {
            let (a, b) = ((self.sum_hi % rows) * nx, (self.sum_lo % rows) * nx);
            let (add, sub) = (
                (&self.ring[a..a + nx], &self.ring_ok[a..a + nx]),
                (&self.ring[b..b + nx], &self.ring_ok[b..b + nx]),
            );
            let cols = (
                &mut self.col_m[..],
                &mut self.col_x[..],
                &mut self.col_y[..],
            );
            slide_cols(self.simd, cols, add, sub, squares);
            self.sum_hi += 1;
            self.sum_lo += 1;
        }
        let none = (&self.zeros[..], &self.zeros_ok[..]);
        while self.sum_hi < hi {
            let a = (self.sum_hi % rows) * nx;
            let add = (&self.ring[a..a + nx], &self.ring_ok[a..a + nx]);
            let cols = (
                &mut self.col_m[..],
                &mut self.col_x[..],
                &mut self.col_y[..],
            );
            slide_cols(self.simd, cols, add, none, squares);
            self.sum_hi += 1;
        }
        while self.sum_lo < lo {
            let b = (self.sum_lo % rows) * nx;
            let sub = (&self.ring[b..b + nx], &self.ring_ok[b..b + nx]);
            let cols = (
                &mut self.col_m[..],
                &mut self.col_x[..],
                &mut self.col_y[..],
            );
            slide_cols(self.simd, cols, none, sub, squares);
            self.sum_lo += 1;
        }
    }

    fn threshold_row(&mut self, j: usize) {
        let (y0, y1) = self.band(j);
        if self.geo.runs(j).is_empty() {
            return;
        }
        let (lo, hi) = (j.saturating_sub(self.ky).max(y0), (j + self.ky + 1).min(y1));
        self.slide(lo, hi);
        let nx = self.nx;
        let rows = 2 * self.ky + 2;
        let slot = (j % rows) * nx;
        // A window is over-dispersed only if its sum x exceeds g (1 + sb sqrt(2 / (m - 1))):
        // its sum of squares is at most x^2, so m y - x^2 <= (m - 1) x^2. The bound is least
        // at the smallest or the largest window.
        let least_sum =
            |m: f64| self.p.gain * (1.0 + self.p.sigma_background * (2.0 / (m - 1.0)).sqrt());
        let window = ((2 * self.kx + 1) * (2 * self.ky + 1)) as f64;
        let over_floor = least_sum(f64::from(self.min_count)).min(least_sum(window));
        let test = RowTest {
            extended: self.p.extended,
            k: self.kx,
            min_count: self.min_count,
            over_floor: (over_floor * (1.0 - SIEVE)) as f32,
            above: self.above,
            gain: self.p.gain,
            sigma_b: self.p.sigma_background,
            sigma_s: self.p.sigma_strong,
        };
        let sums = WindowSums {
            m: &mut self.win_m,
            x: &mut self.win_x,
            y: &mut self.win_y,
            scratch_m: &mut self.scratch_m,
            scratch_x: &mut self.scratch_x,
            scratch_y: &mut self.scratch_y,
        };
        let columns = &self.geo.layout().columns;
        test.run(
            self.simd,
            columns,
            (&self.col_m, &self.col_x, &self.col_y),
            sums,
            (&self.ring[slot..slot + nx], &self.ring_ok[slot..slot + nx]),
            &mut self.flags,
        );
        flagged(&self.flags, &mut self.found);
        for &x in &self.found {
            let x = x as usize;
            if !self.p.extended {
                let (m, sx) = (u32::from(self.win_m[x]), u64::from(self.win_x[x]));
                if !stands_out(m, sx, self.ring[slot + x], test.gain, test.sigma_s) {
                    continue;
                }
                // Only now the window's sum of squares, from the column sums of squares, for
                // the dispersion test.
                let (wl, wh) = (self.win_lo[x] as usize, self.win_hi[x] as usize);
                let sy = self.col_y[wl..wh].iter().sum::<u64>();
                if !over_dispersed(m, sx, sy, test.gain, test.sigma_b) {
                    continue;
                }
            }
            self.hits.push((j * nx + x) as u32);
        }
    }

    /// Whether pixel `i` is usable in this frame.
    #[inline]
    fn usable<T: Pixel>(&self, frame: &[T], i: usize) -> bool {
        self.geo.usable(i) && frame[i].get() < self.limit
    }

    /// `dispersion_extended`'s second stage: erode, then threshold the core against the mean
    /// of what is left around it. Leaves the strong pixels in `hits`.
    fn extend<T: Pixel>(&mut self, frame: &[T]) {
        let nx = self.nx;
        let hits = std::mem::take(&mut self.hits);
        for &i in &hits {
            self.marks.set(i as usize);
        }
        let reach = self.kx.min(self.ky) as isize - 1;
        let mut core = Vec::new();
        for &i in &hits {
            let (x, y) = (i as usize % nx, i as usize / nx);
            let Some(panel) = self.geo.panel(x, y) else {
                continue;
            };
            let mut inside = true;
            'window: for dy in -reach..=reach {
                for dx in -reach..=reach {
                    let (qx, qy) = (x as isize + dx, y as isize + dy);
                    if !panel.contains(qx, qy) {
                        continue;
                    }
                    let q = qy as usize * nx + qx as usize;
                    if self.usable(frame, q) && !self.marks.get(q) {
                        inside = false;
                        break 'window;
                    }
                }
            }
            if inside {
                core.push(i);
            }
        }
        self.marks.clear();
        for &i in &core {
            self.marks.set(i as usize);
        }
        let (kx, ky) = (self.kx as isize + 2, self.ky as isize + 2);
        let (g, ss) = (self.p.gain, self.p.sigma_strong);
        let mut strong = hits;
        strong.clear();
        for &i in &core {
            let (x, y) = (i as usize % nx, i as usize / nx);
            let v = frame[i as usize].get();
            if v < self.above {
                continue;
            }
            let Some(panel) = self.geo.panel(x, y) else {
                continue;
            };
            let (mut m, mut sum) = (0u64, 0u64);
            for qy in (y as isize - ky).max(panel.y0 as isize)
                ..(y as isize + ky + 1).min(panel.y1 as isize)
            {
                for qx in (x as isize - kx).max(panel.x0 as isize)
                    ..(x as isize + kx + 1).min(panel.x1 as isize)
                {
                    let q = qy as usize * nx + qx as usize;
                    if self.usable(frame, q) && !self.marks.get(q) {
                        m += 1;
                        sum += u64::from(frame[q].get());
                    }
                }
            }
            let mean = if m >= 2 { sum as f64 / m as f64 } else { 0.0 };
            if f64::from(v) >= mean + ss * (g * mean).sqrt() {
                strong.push(i);
            }
        }
        self.marks.clear();
        self.hits = strong;
    }

    /// Finishes the frame: the remaining rows, then spots from the strong pixels. Returns the
    /// spots and whether the frame was rejected for too many strong pixels.
    pub fn finish<T: Pixel>(&mut self, frame: &[T], limit: u32) -> (Vec<Peak>, bool) {
        debug_assert_eq!(self.arrived, self.nx * self.ny);
        self.limit = limit.min(BIG);
        while self.next_out < self.ny {
            self.threshold_row(self.next_out);
            self.next_out += 1;
        }
        if self.p.extended {
            self.extend(frame);
        }
        let most = (self.p.max_strong_fraction * (self.nx * self.ny) as f64).ceil() as usize;
        if self.hits.len() > most {
            return (Vec::new(), true);
        }
        let spots = self.spots(frame);
        (spots, false)
    }

    fn spots<T: Pixel>(&mut self, frame: &[T]) -> Vec<Peak> {
        let nx = self.nx;
        let geo = &self.geo;
        let same_panel = |a: u32, b: u32| {
            let (a, b) = (a as usize, b as usize);
            geo.panel(a % nx, a / nx) == geo.panel(b % nx, b / nx)
        };
        self.components.label(&self.hits, nx, false, same_panel);
        for &i in &self.hits {
            self.marks.set(i as usize);
        }
        let mut spots = Vec::new();
        for members in self.components.iter() {
            if let Some(peak) = self.spot(frame, members) {
                spots.push(peak);
            }
        }
        self.marks.clear();
        spots
    }

    fn spot<T: Pixel>(&self, frame: &[T], members: &[u32]) -> Option<Peak> {
        let p = &self.p;
        let nx = self.nx;
        if members.len() < p.min_spot_size || members.len() > p.max_spot_size {
            return None;
        }
        let (mut sum, mut sum_x, mut sum_y) = (0f64, 0f64, 0f64);
        let (mut max, mut peak_at) = (0u32, 0usize);
        let mut bbox = BBox {
            fs0: u32::MAX,
            ss0: u32::MAX,
            fs1: 0,
            ss1: 0,
        };
        for &k in members {
            let i = self.hits[k as usize] as usize;
            let (x, y) = (i % nx, i / nx);
            let v = frame[i].get();
            let w = f64::from(v);
            sum += w;
            sum_x += w * (x as f64 + 0.5);
            sum_y += w * (y as f64 + 0.5);
            if v > max {
                (max, peak_at) = (v, i);
            }
            bbox.fs0 = bbox.fs0.min(x as u32);
            bbox.ss0 = bbox.ss0.min(y as u32);
            bbox.fs1 = bbox.fs1.max(x as u32 + 1);
            bbox.ss1 = bbox.ss1.max(y as u32 + 1);
        }
        let (fs, ss) = (sum_x / sum, sum_y / sum);
        let (px, py) = ((peak_at % nx) as f64 + 0.5, (peak_at / nx) as f64 + 0.5);
        if (px - fs).hypot(py - ss) > p.max_separation {
            return None;
        }
        let panel = self.geo.panel(peak_at % nx, peak_at / nx)?;
        let centre = ((fs - 0.5).round() as isize, (ss - 0.5).round() as isize);
        let bg = local_background(frame, nx, panel, centre, BACKGROUND_RADIUS, |i, v| {
            v < self.limit && self.geo.usable(i) && !self.marks.get(i)
        });
        let (offset, sigma) = bg.map_or((0.0, MIN_SIGMA), |b| (b.offset, b.sigma));
        let total = sum - offset * members.len() as f64;
        Some(Peak {
            fs,
            ss,
            total,
            max,
            pixels: members.len() as u32,
            snr: total / sigma,
            bbox,
        })
    }
}

/// How far below passing the single-precision sieve still lets a pixel through (relative).
const SIEVE: f64 = 1e-3;

/// The pixel stands above its window's mean: `m v - x > ss sqrt(g x m)`, exactly as DIALS
/// writes it.
#[inline]
fn stands_out(m: u32, x: u64, v: u32, gain: f64, ss: f64) -> bool {
    f64::from(m) * f64::from(v) - x as f64 > ss * (gain * x as f64 * f64::from(m)).sqrt()
}

/// Variance over mean of the window above `gain (1 + sb sqrt(2 / (m - 1)))`, without dividing:
/// `m y - x^2 > gain x (m - 1 + sb sqrt(2 (m - 1)))`.
#[inline]
fn over_dispersed(m: u32, x: u64, y: u64, gain: f64, sb: f64) -> bool {
    // In 64 bits when that cannot overflow (always, but for huge windows of huge counts):
    // converting from 128 bits is a library call.
    let a = match (u64::from(m).checked_mul(y), x.checked_mul(x)) {
        (Some(my), Some(xx)) if my < 1 << 62 && xx < 1 << 62 => (my as i64 - xx as i64) as f64,
        _ => (i128::from(m) * i128::from(y) - i128::from(x) * i128::from(x)) as f64,
    };
    let m1 = f64::from(m - 1);
    a > 0.0 && a > gain * x as f64 * (m1 + sb * (2.0 * m1).sqrt())
}

/// The positions of the nonzero bytes of `flags`, into `out`, skipping zeros eight at a time.
fn flagged(flags: &[u8], out: &mut Vec<u32>) {
    out.clear();
    let words = flags.chunks_exact(8);
    let rest = words.remainder();
    for (c, w) in words.enumerate() {
        let mut bits = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        while bits != 0 {
            out.push((c * 8 + bits.trailing_zeros() as usize / 8) as u32);
            bits &= !(0xff << (bits.trailing_zeros() / 8 * 8));
        }
    }
    let base = flags.len() - rest.len();
    out.extend(
        (0..rest.len())
            .filter(|&k| rest[k] != 0)
            .map(|k| (base + k) as u32),
    );
}

/// Column sums: adds one row's counts (and usable flags, and squares) and subtracts
/// another's.
fn slide_cols(
    simd: Simd,
    cols: (&mut [u16], &mut [u32], &mut [u64]),
    add: (&[u32], &[u8]),
    sub: (&[u32], &[u8]),
    squares: bool,
) {
    match simd {
        Simd::Baseline => slide(cols, add, sub, squares),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Simd::Avx2 and Simd::Avx512 are only chosen when the CPU has AVX2
        // (Simd::available).
        Simd::Avx2 | Simd::Avx512 => unsafe { slide_avx2(cols, add, sub, squares) },
    }
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn slide_avx2(
    cols: (&mut [u16], &mut [u32], &mut [u64]),
    add: (&[u32], &[u8]),
    sub: (&[u32], &[u8]),
    squares: bool,
) {
    slide(cols, add, sub, squares)
}

#[inline(always)]
fn slide(
    (m, x, y): (&mut [u16], &mut [u32], &mut [u64]),
    (add, add_ok): (&[u32], &[u8]),
    (sub, sub_ok): (&[u32], &[u8]),
    squares: bool,
) {
    let n = m.len();
    let (add, add_ok, sub, sub_ok) = (&add[..n], &add_ok[..n], &sub[..n], &sub_ok[..n]);
    for i in 0..n {
        m[i] = m[i] + u16::from(add_ok[i]) - u16::from(sub_ok[i]);
        x[i] = x[i] + add[i] - sub[i];
    }
    if squares {
        for i in 0..n {
            let (a, s) = (u64::from(add[i]), u64::from(sub[i]));
            y[i] = y[i] + a * a - s * s;
        }
    }
}

/// The window sums of one row.
struct WindowSums<'a> {
    m: &'a mut [u16],
    x: &'a mut [u32],
    y: &'a mut [u64],
    /// Room for the partial sums (`box_sum`), `levels x nx` each.
    scratch_m: &'a mut [u16],
    scratch_x: &'a mut [u32],
    scratch_y: &'a mut [u64],
}

/// The per-pixel test of one row, vectorisable: window sums from the column sums, then a flag
/// for each pixel that may be strong (`dispersion`: it stands above its window's mean; the
/// dispersion test follows for those few, exactly) or is over-dispersed (`dispersion_extended`).
#[derive(Clone, Copy)]
struct RowTest {
    extended: bool,
    k: usize,
    min_count: u32,
    /// Below this window sum no window is over-dispersed (less the sieve's margin).
    over_floor: f32,
    above: u32,
    gain: f64,
    sigma_b: f64,
    sigma_s: f64,
}

impl RowTest {
    fn run(
        &self,
        simd: Simd,
        columns: &[(usize, usize)],
        cols: (&[u16], &[u32], &[u64]),
        sums: WindowSums,
        row: (&[u32], &[u8]),
        flags: &mut [u8],
    ) {
        match simd {
            Simd::Baseline => self.kernel(columns, cols, sums, row, flags),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Simd::Avx2 and Simd::Avx512 are only chosen when the CPU has AVX2
            // (Simd::available).
            Simd::Avx2 | Simd::Avx512 => unsafe {
                self.kernel_avx2(columns, cols, sums, row, flags)
            },
        }
    }

    /// # Safety
    /// The CPU must run AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn kernel_avx2(
        &self,
        columns: &[(usize, usize)],
        cols: (&[u16], &[u32], &[u64]),
        sums: WindowSums,
        row: (&[u32], &[u8]),
        flags: &mut [u8],
    ) {
        self.kernel(columns, cols, sums, row, flags)
    }

    #[inline(always)]
    fn kernel(
        &self,
        columns: &[(usize, usize)],
        (col_m, col_x, col_y): (&[u16], &[u32], &[u64]),
        sums: WindowSums,
        (values, ok): (&[u32], &[u8]),
        flags: &mut [u8],
    ) {
        flags.fill(0);
        for &(x0, x1) in columns {
            box_sum(col_m, sums.m, sums.scratch_m, x0, x1, self.k);
            box_sum(col_x, sums.x, sums.scratch_x, x0, x1, self.k);
            if self.extended {
                box_sum(col_y, sums.y, sums.scratch_y, x0, x1, self.k);
            }
            let span = x0..x1;
            let (m, x, v) = (
                &sums.m[span.clone()],
                &sums.x[span.clone()],
                &values[span.clone()],
            );
            let flags = &mut flags[span.clone()];
            let (g, sb, ss, min_count) = (self.gain, self.sigma_b, self.sigma_s, self.min_count);
            if self.extended {
                let (y, ok) = (&sums.y[span.clone()], &ok[span]);
                for ((((f, &m), &x), &y), &ok) in flags.iter_mut().zip(m).zip(x).zip(y).zip(ok) {
                    let (mf, xf) = (f64::from(m), f64::from(x));
                    // Variance over mean above g (1 + sb sqrt(2 / (m - 1))), undivided and
                    // squared: m y - x^2 - g x (m - 1) > g x sb sqrt(2 (m - 1)).
                    let lhs = mf * y as f64 - xf * xf - g * xf * (mf - 1.0);
                    let rhs = g * xf * sb;
                    let over = (lhs > 0.0) & (lhs * lhs > rhs * rhs * 2.0 * (mf - 1.0));
                    *f = u8::from((ok != 0) & (u32::from(m) >= min_count) & over);
                }
            } else {
                // The pixel against its window's mean, squared: m v - x > ss sqrt(g x m). In
                // single precision, eight pixels a step, as a sieve that lets through everything
                // within 0.1% of passing; `stands_out` decides for the few that do. (An unusable
                // pixel is 0, below `above`, which is at least 1.) A window whose sum is too
                // small to be over-dispersed fails too: on a dark frame that is most windows
                // around a lone count, which stands out.
                let (above, floor) = (self.above, self.over_floor);
                let ss2g = (ss * ss * g * (1.0 - SIEVE)) as f32;
                for (((f, &m), &x), &v) in flags.iter_mut().zip(m).zip(x).zip(v) {
                    let (mf, xf) = (f32::from(m), x as f32);
                    let b = mf * v as f32 - xf;
                    let sieve = (b * b.abs() >= ss2g * xf * mf) & (xf >= floor);
                    *f = u8::from((v >= above) & (u32::from(m) >= min_count) & sieve);
                }
            }
        }
    }
}

/// `out[x]` = the sum of `col` over `[x - k, x + k]` cut to `[x0, x1)`, for `x` in `[x0, x1)`.
///
/// Full windows are sums of pieces of power-of-two widths (7 = 4 + 2 + 1), each piece width
/// built from the one before by one shifted addition: a handful of passes that vectorise,
/// rather than one per column of the window.
#[inline(always)]
fn box_sum<T: Copy + Default + std::ops::Add<Output = T>>(
    col: &[T],
    out: &mut [T],
    scratch: &mut [T],
    x0: usize,
    x1: usize,
    k: usize,
) {
    let direct = |out: &mut [T], x: usize| {
        let mut s = T::default();
        for &c in &col[x.saturating_sub(k).max(x0)..(x + k + 1).min(x1)] {
            s = s + c;
        }
        out[x] = s;
    };
    let (n, width) = (x1 - x0, 2 * k + 1);
    if n <= width {
        (x0..x1).for_each(|x| direct(out, x));
        return;
    }
    // Level l of `scratch` holds the sums of 2^l columns from each column on (level 0 is `col`).
    let levels = width.ilog2() as usize + 1;
    let col = &col[x0..x1];
    for l in 1..levels {
        let (done, rest) = scratch.split_at_mut(l * n);
        let prev: &[T] = if l == 1 { col } else { &done[(l - 1) * n..] };
        let half = 1 << (l - 1);
        for (s, (&a, &b)) in rest[..n - 2 * half + 1]
            .iter_mut()
            .zip(prev.iter().zip(&prev[half..n]))
        {
            *s = a + b;
        }
    }
    let full = &mut out[x0 + k..x1 - k];
    let mut offset = 0;
    for l in (0..levels).rev() {
        if width & (1 << l) == 0 {
            continue;
        }
        let piece: &[T] = if l == 0 {
            col
        } else {
            &scratch[l * n..(l + 1) * n]
        };
        let piece = &piece[offset..offset + full.len()];
        if offset == 0 {
            full.copy_from_slice(piece);
        } else {
            for (o, &p) in full.iter_mut().zip(piece) {
                *o = *o + p;
            }
        }
        offset += 1 << l;
    }
    (x0..x0 + k).chain(x1 - k..x1).for_each(|x| direct(out, x));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peaks::{Finder, PeakFinder};

    /// A frame with two modules side by side (a 5-pixel gap), masked pixels, a background of
    /// about `bg` on top of `offset`, spots `scale` times brighter than the background's
    /// fluctuations, and a few pixels at the overload value.
    fn test_frame(bg: u32, offset: u32, scale: u32, seed: u64) -> (Layout, Vec<u32>, Vec<u32>) {
        let (nx, ny) = (90, 70);
        let layout = Layout {
            nx,
            ny,
            columns: vec![(0, 40), (45, 90)],
            rows: vec![(0, 70)],
        };
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut frame: Vec<u32> = (0..nx * ny)
            .map(|_| offset + (0..2 * bg).filter(|_| next() % 2 == 0).count() as u32)
            .collect();
        for _ in 0..25 {
            let (cx, cy) = ((next() % nx as u64) as usize, (next() % ny as u64) as usize);
            let peak = (5 + (next() % 200) as u32) * scale;
            for (dx, dy, share) in [
                (0, 0, 1),
                (1, 0, 2),
                (0, 1, 2),
                (-1, 0, 3),
                (0, -1, 3),
                (1, 1, 5),
            ] {
                let (x, y) = (cx as isize + dx, cy as isize + dy);
                if x >= 0 && y >= 0 && (x as usize) < nx && (y as usize) < ny {
                    frame[y as usize * nx + x as usize] += peak / share;
                }
            }
        }
        let mut mask = vec![0u32; nx * ny];
        for y in 0..ny {
            for x in 40..45 {
                mask[y * nx + x] = 1;
                frame[y * nx + x] = u32::MAX;
            }
        }
        for _ in 0..40 {
            mask[(next() % (nx * ny) as u64) as usize] |= 2;
        }
        for _ in 0..5 {
            frame[(next() % (nx * ny) as u64) as usize] = u32::MAX;
        }
        (layout, mask, frame)
    }

    /// DIALS's thresholds straight from their definitions, window by window.
    fn naive(p: &DispersionParams, layout: &Layout, mask: &[u32], frame: &[u32]) -> Vec<u32> {
        let (nx, ny) = (layout.nx, layout.ny);
        let panel = |x: usize| {
            layout
                .columns
                .iter()
                .find(|&&(a, b)| (a..b).contains(&x))
                .copied()
        };
        let usable = |x: usize, y: usize| {
            panel(x).is_some() && mask[y * nx + x] == 0 && frame[y * nx + x] < u32::MAX
        };
        let (kx, ky) = (p.kernel.0 as isize, p.kernel.1 as isize);
        let window =
            |x: usize, y: usize, kx: isize, ky: isize, take: &dyn Fn(usize, usize) -> bool| {
                let (x0, x1) = panel(x).unwrap();
                let (mut m, mut s, mut s2) = (0f64, 0f64, 0f64);
                for qy in (y as isize - ky).max(0)..(y as isize + ky + 1).min(ny as isize) {
                    for qx in
                        (x as isize - kx).max(x0 as isize)..(x as isize + kx + 1).min(x1 as isize)
                    {
                        let (qx, qy) = (qx as usize, qy as usize);
                        if take(qx, qy) {
                            let v = f64::from(frame[qy * nx + qx]);
                            m += 1.0;
                            s += v;
                            s2 += v * v;
                        }
                    }
                }
                (m, s, s2)
            };
        let (g, sb, ss) = (p.gain, p.sigma_background, p.sigma_strong);
        let min_count = p.min_local as f64;
        let over = |x, y| {
            let (m, s, s2) = window(x, y, kx, ky, &usable);
            m >= min_count && m * s2 - s * s > g * s * (m - 1.0 + sb * (2.0 * (m - 1.0)).sqrt())
        };
        let mut strong = Vec::new();
        if !p.extended {
            for y in 0..ny {
                for x in 0..nx {
                    let v = f64::from(frame[y * nx + x]);
                    if usable(x, y) && v > p.global_threshold && over(x, y) {
                        let (m, s, _) = window(x, y, kx, ky, &usable);
                        if m * v - s > ss * (g * s * m).sqrt() {
                            strong.push((y * nx + x) as u32);
                        }
                    }
                }
            }
            return strong;
        }
        let flagged: Vec<bool> = (0..nx * ny)
            .map(|i| !usable(i % nx, i / nx) || over(i % nx, i / nx))
            .collect();
        let reach = kx.min(ky) - 1;
        let core: Vec<bool> = (0..nx * ny)
            .map(|i| {
                let (x, y) = (i % nx, i / nx);
                if !usable(x, y) || !flagged[i] {
                    return false;
                }
                let (x0, x1) = panel(x).unwrap();
                (-reach..=reach).all(|dy| {
                    (-reach..=reach).all(|dx| {
                        let (qx, qy) = (x as isize + dx, y as isize + dy);
                        qx < x0 as isize
                            || qx >= x1 as isize
                            || qy < 0
                            || qy >= ny as isize
                            || flagged[qy as usize * nx + qx as usize]
                    })
                })
            })
            .collect();
        for i in 0..nx * ny {
            if !core[i] {
                continue;
            }
            let (x, y) = (i % nx, i / nx);
            let (m, s, _) = window(x, y, kx + 2, ky + 2, &|qx, qy| {
                usable(qx, qy) && !core[qy * nx + qx]
            });
            let mean = if m >= 2.0 { s / m } else { 0.0 };
            let v = f64::from(frame[i]);
            if v > p.global_threshold && v >= mean + ss * (g * mean).sqrt() {
                strong.push(i as u32);
            }
        }
        strong
    }

    fn streamed(
        p: &DispersionParams,
        layout: &Layout,
        mask: &[u32],
        frame: &[u32],
        simd: Simd,
        piece: usize,
    ) -> Vec<u32> {
        let mut d = Dispersion::new(p.clone(), layout.clone(), Some(mask)).unwrap();
        d.simd = simd;
        d.begin();
        for (k, part) in frame.chunks(piece).enumerate() {
            d.feed(k * piece, part, u32::MAX);
        }
        d.finish(frame, u32::MAX);
        d.hits.clone()
    }

    #[test]
    fn strong_pixels_are_dials_definitions() {
        // The last has counts near a million, where single precision is not exact.
        for (bg, offset, scale, seed) in [
            (1, 0, 1, 3),
            (4, 0, 1, 5),
            (12, 0, 1, 7),
            (3, 1 << 20, 1000, 9),
        ] {
            let (layout, mask, frame) = test_frame(bg, offset, scale, seed);
            for extended in [false, true] {
                for kernel in [(3, 3), (2, 4)] {
                    let p = DispersionParams {
                        extended,
                        kernel,
                        global_threshold: 1.0,
                        ..DispersionParams::default()
                    };
                    let expected = naive(&p, &layout, &mask, &frame);
                    assert!(
                        expected.len() > 20,
                        "a test that tests something: {}",
                        expected.len()
                    );
                    let mut simds = vec![Simd::Baseline];
                    if Simd::detect() != Simd::Baseline {
                        simds.push(Simd::detect());
                    }
                    for simd in simds {
                        // Whole, and in pieces that end mid-row as a decoder hands them over.
                        for piece in [frame.len(), 257, 33] {
                            let got = streamed(&p, &layout, &mask, &frame, simd, piece);
                            assert_eq!(got, expected, "bg {bg} {p:?} {simd:?} pieces of {piece}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn spots_are_filtered_on_size_and_separation() {
        let (nx, ny) = (60, 60);
        let mut frame = vec![1u32; nx * ny];
        // A 2-pixel spot (too small), a plus-shaped spot (kept), and an L whose brightest pixel
        // is far from its centroid (rejected at max_separation 1).
        for (x, y, v) in [
            (10, 10, 60),
            (11, 10, 60),
            (30, 30, 90),
            (29, 30, 40),
            (31, 30, 40),
            (30, 29, 40),
            (30, 31, 40),
            (45, 45, 200),
            (45, 46, 30),
            (45, 47, 30),
            (45, 48, 30),
            (46, 48, 30),
            (47, 48, 30),
        ] {
            frame[y * nx + x] = v;
        }
        let p = DispersionParams {
            max_separation: 1.0,
            ..DispersionParams::default()
        };
        let mut pf = PeakFinder::new(Finder::Dispersion(p), nx, ny, None).unwrap();
        let found = pf.search(&frame).unwrap();
        assert_eq!(found.peaks.len(), 1, "{found:?}");
        let spot = found.peaks[0];
        assert_eq!((spot.pixels, spot.max), (5, 90));
        assert!((spot.fs - 30.5).abs() < 1e-12 && (spot.ss - 30.5).abs() < 1e-12);
        assert_eq!(spot.total, 250.0 - 5.0);
    }

    #[test]
    fn a_frame_of_strong_pixels_is_rejected() {
        // Alternating 0 and 100: everything is over-dispersed and half of it strong.
        let (nx, ny) = (40, 40);
        let frame: Vec<u16> = (0..nx * ny)
            .map(|i| if (i + i / nx) % 2 == 0 { 100 } else { 0 })
            .collect();
        let mut pf = PeakFinder::new(
            Finder::Dispersion(DispersionParams::default()),
            nx,
            ny,
            None,
        )
        .unwrap();
        let found = pf.search(&frame).unwrap();
        assert!(found.too_many_strong && found.peaks.is_empty() && !found.hit);
    }

    #[test]
    fn parameters_are_checked() {
        let bad =
            |p: DispersionParams| Dispersion::new(p, Layout::whole(8, 8), None).err().unwrap();
        for (p, name) in [
            (
                DispersionParams {
                    kernel: (0, 3),
                    ..Default::default()
                },
                "kernel",
            ),
            (
                DispersionParams {
                    min_local: 1,
                    ..Default::default()
                },
                "min_local",
            ),
            (
                DispersionParams {
                    min_local: 50,
                    ..Default::default()
                },
                "min_local",
            ),
            (
                DispersionParams {
                    gain: 0.0,
                    ..Default::default()
                },
                "gain",
            ),
            (
                DispersionParams {
                    max_strong_fraction: 1.5,
                    ..Default::default()
                },
                "max_strong_fraction",
            ),
        ] {
            assert!(matches!(bad(p), PeakError::BadParameter { name: n, .. } if n == name));
        }
    }
}
