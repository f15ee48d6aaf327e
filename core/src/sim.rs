//! Synthetic EIGER2 frames with ground truth, deterministic for a seed.
//!
//! A frame has the EIGER2 module layout (1028 x 512 pixel modules, 12 px gaps between module
//! columns and 38 px between module rows) with the gaps at the dtype's maximum, as DECTRIS
//! writes them; a Poisson background that falls linearly from the centre to the corners, plus
//! optional ice rings; and Gaussian spots whose photons are placed one by one, so counts are
//! Poisson too, optionally a fraction of them right at module edges. Optional defects: dead
//! pixels and a beamstop disc at the dtype's maximum (masked), and hot pixels (not masked: a
//! detector does not know them). The frame comes with its NXmx `pixel_mask` and the truth: the
//! spots and the hot pixels.
//!
//! The optional features draw from their own random stream, so a spec without them gives the
//! same frame whatever they would have drawn.
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Module size and gaps of the EIGER2 family.
pub const MODULE_FAST: usize = 1028;
pub const MODULE_SLOW: usize = 512;
pub const GAP_FAST: usize = 12;
pub const GAP_SLOW: usize = 38;

/// An EIGER2 detector: modules across (fast) and down (slow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detector {
    pub name: &'static str,
    pub modules_fast: usize,
    pub modules_slow: usize,
}

impl Detector {
    pub const EIGER2_1M: Detector = Detector {
        name: "eiger2-1m",
        modules_fast: 1,
        modules_slow: 2,
    };
    pub const EIGER2_4M: Detector = Detector {
        name: "eiger2-4m",
        modules_fast: 2,
        modules_slow: 4,
    };
    pub const EIGER2_9M: Detector = Detector {
        name: "eiger2-9m",
        modules_fast: 3,
        modules_slow: 6,
    };
    pub const EIGER2_16M: Detector = Detector {
        name: "eiger2-16m",
        modules_fast: 4,
        modules_slow: 8,
    };
    pub const ALL: [Detector; 4] = [
        Self::EIGER2_1M,
        Self::EIGER2_4M,
        Self::EIGER2_9M,
        Self::EIGER2_16M,
    ];

    pub fn by_name(name: &str) -> Option<Detector> {
        Self::ALL
            .into_iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// Pixels along the fast axis (x).
    pub fn nx(&self) -> usize {
        self.modules_fast * MODULE_FAST + (self.modules_fast - 1) * GAP_FAST
    }

    /// Pixels along the slow axis (y).
    pub fn ny(&self) -> usize {
        self.modules_slow * MODULE_SLOW + (self.modules_slow - 1) * GAP_SLOW
    }

    /// Whether pixel (x, y) lies in a gap between modules.
    pub fn is_gap(&self, x: usize, y: usize) -> bool {
        x % (MODULE_FAST + GAP_FAST) >= MODULE_FAST || y % (MODULE_SLOW + GAP_SLOW) >= MODULE_SLOW
    }
}

/// Stored pixel type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelType {
    U16,
    U32,
}

impl PixelType {
    pub fn size(self) -> usize {
        match self {
            PixelType::U16 => 2,
            PixelType::U32 => 4,
        }
    }

    pub fn max(self) -> u32 {
        match self {
            PixelType::U16 => u32::from(u16::MAX),
            PixelType::U32 => u32::MAX,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PixelType::U16 => "uint16",
            PixelType::U32 => "uint32",
        }
    }
}

/// NXmx `pixel_mask` bits the simulator sets.
pub const MASK_GAP: u32 = 1 << 0;
pub const MASK_DEAD: u32 = 1 << 1;
/// The beamstop: user-defined (bit 8), as beamlines mask it.
pub const MASK_BEAMSTOP: u32 = 1 << 8;

/// A powder ring of ice: extra background, Gaussian in radius.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IceRing {
    /// Distance from the frame centre, pixels.
    pub radius: f64,
    /// Gaussian sigma across the ring, pixels.
    pub width: f64,
    /// Extra mean photons per pixel on the ring's crest.
    pub photons: f64,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct FrameSpec {
    pub detector: Detector,
    pub pixel_type: PixelType,
    /// Mean photons per pixel at the centre and at the corners.
    pub background_centre: f64,
    pub background_edge: f64,
    pub spots: usize,
    pub seed: u64,
    pub ice_rings: Vec<IceRing>,
    /// Fraction of spots centred 0.2 to 1.5 px inside a module edge.
    pub edge_spot_fraction: f64,
    /// Fraction of module pixels that are dead (at the maximum, masked).
    pub dead_fraction: f64,
    /// Radius of the beamstop disc at the centre (at the maximum, masked), pixels; 0 for none.
    pub beamstop_radius: f64,
    /// Hot pixels: unmasked, with counts between 1000 and 20000 (capped below the maximum).
    pub hot_pixels: usize,
}

impl FrameSpec {
    pub fn new(
        detector: Detector,
        pixel_type: PixelType,
        background: f64,
        spots: usize,
        seed: u64,
    ) -> Self {
        FrameSpec {
            detector,
            pixel_type,
            background_centre: background,
            background_edge: background,
            spots,
            seed,
            ice_rings: Vec::new(),
            edge_spot_fraction: 0.0,
            dead_fraction: 0.0,
            beamstop_radius: 0.0,
            hot_pixels: 0,
        }
    }
}

/// A Bragg spot as placed: centre in pixels (pixel centres at .5) and photons thrown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spot {
    pub x: f64,
    pub y: f64,
    pub sigma: f64,
    pub photons: u32,
    /// Placed right at a module edge.
    pub at_edge: bool,
}

/// A simulated frame: pixel values (row-major, `ny` rows of `nx`), its NXmx pixel mask, and the
/// truth: the spots and the hot pixels `(x, y)`.
#[derive(Clone, Debug)]
pub struct Frame {
    pub nx: usize,
    pub ny: usize,
    pub pixel_type: PixelType,
    pub pixels: Vec<u32>,
    pub mask: Vec<u32>,
    pub spots: Vec<Spot>,
    pub hot_pixels: Vec<(usize, usize)>,
}

impl Frame {
    /// The pixels in the stored type, little-endian: the bytes an HDF5 chunk holds.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.pixel_type {
            PixelType::U16 => self
                .pixels
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
            PixelType::U32 => self.pixels.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        }
    }
}

/// Draws a Poisson count by inversion (fast for the small means of detector backgrounds).
fn poisson(rng: &mut impl Rng, mean: f64) -> u32 {
    if mean > 30.0 {
        // Normal approximation; detector backgrounds never get here in practice.
        let z: f64 = rng.sample(rand_distr::StandardNormal);
        return (mean + z * mean.sqrt()).round().max(0.0) as u32;
    }
    let u: f64 = rng.gen();
    let mut p = (-mean).exp();
    let mut cum = p;
    let mut k = 0u32;
    while u > cum && k < 1000 {
        k += 1;
        p *= mean / f64::from(k);
        cum += p;
    }
    k
}

/// A point 0.2 to 1.5 px inside one of the four edges of a random module.
fn edge_position(rng: &mut impl Rng, det: Detector) -> (f64, f64) {
    let mx = rng.gen_range(0..det.modules_fast) * (MODULE_FAST + GAP_FAST);
    let my = rng.gen_range(0..det.modules_slow) * (MODULE_SLOW + GAP_SLOW);
    let inset = rng.gen_range(0.2..1.5);
    let along_x = mx as f64 + rng.gen_range(0.0..MODULE_FAST as f64);
    let along_y = my as f64 + rng.gen_range(0.0..MODULE_SLOW as f64);
    match rng.gen_range(0..4) {
        0 => (mx as f64 + inset, along_y),
        1 => ((mx + MODULE_FAST) as f64 - inset, along_y),
        2 => (along_x, my as f64 + inset),
        _ => (along_x, (my + MODULE_SLOW) as f64 - inset),
    }
}

impl FrameSpec {
    /// The mean background photons per pixel at `(x, y)` (pixels, centres at `.5`): the
    /// radial fall plus the ice rings, what [`simulate`] draws each pixel from.
    pub fn background_at(&self, x: f64, y: f64) -> f64 {
        let (cx, cy) = (
            self.detector.nx() as f64 / 2.0,
            self.detector.ny() as f64 / 2.0,
        );
        let rmax = (cx * cx + cy * cy).sqrt();
        let slope = (self.background_edge - self.background_centre) / rmax;
        let (dx, dy) = (x - cx, y - cy);
        let r = (dx * dx + dy * dy).sqrt();
        let ice: f64 = self
            .ice_rings
            .iter()
            .map(|ring| {
                ring.photons * (-(r - ring.radius).powi(2) / (2.0 * ring.width * ring.width)).exp()
            })
            .sum();
        self.background_centre + slope * r + ice
    }
}

/// Simulates one frame.
pub fn simulate(spec: &FrameSpec) -> Frame {
    let det = spec.detector;
    let (nx, ny) = (det.nx(), det.ny());
    let mut rng = Pcg64Mcg::seed_from_u64(spec.seed);
    // The optional features' own stream (see the module docs).
    let mut extra = Pcg64Mcg::seed_from_u64(spec.seed ^ 0x9E37_79B9_7F4A_7C15);
    let (cx, cy) = (nx as f64 / 2.0, ny as f64 / 2.0);
    let mut pixels = vec![0u32; nx * ny];
    for (y, row) in pixels.chunks_exact_mut(nx).enumerate() {
        for (x, px) in row.iter_mut().enumerate() {
            *px = poisson(&mut rng, spec.background_at(x as f64 + 0.5, y as f64 + 0.5));
        }
    }
    let max = spec.pixel_type.max();
    let mut spots = Vec::with_capacity(spec.spots);
    for _ in 0..spec.spots {
        let mut spot = Spot {
            x: rng.gen_range(0.0..nx as f64),
            y: rng.gen_range(0.0..ny as f64),
            sigma: rng.gen_range(0.6..1.2),
            // Log-uniform between 20 and 5000 photons.
            photons: (20f64.ln() + rng.gen::<f64>() * (5000f64.ln() - 20f64.ln())).exp() as u32,
            at_edge: false,
        };
        if spec.edge_spot_fraction > 0.0 && extra.gen::<f64>() < spec.edge_spot_fraction {
            (spot.x, spot.y) = edge_position(&mut extra, det);
            spot.at_edge = true;
        }
        for _ in 0..spot.photons {
            let gx: f64 = rng.sample(rand_distr::StandardNormal);
            let gy: f64 = rng.sample(rand_distr::StandardNormal);
            let (x, y) = (spot.x + gx * spot.sigma, spot.y + gy * spot.sigma);
            if x >= 0.0 && y >= 0.0 && (x as usize) < nx && (y as usize) < ny {
                let px = &mut pixels[y as usize * nx + x as usize];
                *px = px.saturating_add(1).min(max);
            }
        }
        spots.push(spot);
    }
    let mut hot_pixels = Vec::with_capacity(spec.hot_pixels);
    for _ in 0..spec.hot_pixels {
        let (x, y) = (extra.gen_range(0..nx), extra.gen_range(0..ny));
        pixels[y * nx + x] = extra.gen_range(1000..20_000).min(max - 1);
        hot_pixels.push((x, y));
    }
    let mut mask = vec![0u32; nx * ny];
    if spec.dead_fraction > 0.0 {
        let dead = (spec.dead_fraction * (nx * ny) as f64).round() as usize;
        for _ in 0..dead {
            mask[extra.gen_range(0..nx * ny)] |= MASK_DEAD;
        }
    }
    let r2 = spec.beamstop_radius * spec.beamstop_radius;
    for (y, (row, mrow)) in pixels
        .chunks_exact_mut(nx)
        .zip(mask.chunks_exact_mut(nx))
        .enumerate()
    {
        let dy = y as f64 + 0.5 - cy;
        for (x, (px, m)) in row.iter_mut().zip(mrow.iter_mut()).enumerate() {
            let dx = x as f64 + 0.5 - cx;
            if det.is_gap(x, y) {
                *m |= MASK_GAP;
            }
            if dx * dx + dy * dy < r2 {
                *m |= MASK_BEAMSTOP;
            }
            if *m != 0 {
                *px = max;
            }
        }
    }
    hot_pixels.retain(|&(x, y)| mask[y * nx + x] == 0);
    Frame {
        nx,
        ny,
        pixel_type: spec.pixel_type,
        pixels,
        mask,
        spots,
        hot_pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_eiger2_family() {
        let sizes: Vec<_> = Detector::ALL.iter().map(|d| (d.nx(), d.ny())).collect();
        assert_eq!(
            sizes,
            [(1028, 1062), (2068, 2162), (3108, 3262), (4148, 4362)]
        );
    }

    #[test]
    fn frames_are_deterministic_and_have_gaps_and_background() {
        let spec = FrameSpec::new(Detector::EIGER2_1M, PixelType::U16, 1.0, 50, 7);
        let a = simulate(&spec);
        assert_eq!(a.pixels, simulate(&spec).pixels);
        // The horizontal gap between the two modules is at the maximum.
        assert!(a.pixels[520 * a.nx..521 * a.nx]
            .iter()
            .all(|&v| v == 0xFFFF));
        let module: Vec<u32> = a.pixels[..512 * a.nx].to_vec();
        let mean = module.iter().map(|&v| f64::from(v)).sum::<f64>() / module.len() as f64;
        assert!((0.95..1.3).contains(&mean), "background mean {mean}");
        assert_eq!(a.spots.len(), 50);
        assert!(a.mask[520 * a.nx..521 * a.nx]
            .iter()
            .all(|&m| m == MASK_GAP));
        assert!(a.hot_pixels.is_empty() && a.spots.iter().all(|s| !s.at_edge));
    }

    #[test]
    fn optional_features_leave_the_rest_of_the_frame_alone() {
        let plain = FrameSpec::new(Detector::EIGER2_1M, PixelType::U32, 0.5, 40, 3);
        let mut rich = plain.clone();
        rich.ice_rings = vec![IceRing {
            radius: 300.0,
            width: 4.0,
            photons: 20.0,
        }];
        rich.edge_spot_fraction = 0.5;
        rich.dead_fraction = 0.001;
        rich.beamstop_radius = 25.0;
        rich.hot_pixels = 50;
        let (a, b) = (simulate(&plain), simulate(&rich));
        let (cx, cy) = (a.nx / 2, a.ny / 2);

        // Beamstop: masked and at the maximum (row cy - 22 is inside the disc, above the gap
        // that runs through the centre of a 1M); dead pixels too.
        let inside = (cy - 22) * b.nx + cx;
        assert_eq!(b.mask[inside], MASK_BEAMSTOP);
        assert_eq!(b.pixels[inside], u32::MAX);
        assert_eq!(a.mask[inside], 0);
        let dead = b.mask.iter().filter(|&&m| m & MASK_DEAD != 0).count();
        assert!((900..=1100).contains(&dead), "{dead} dead pixels");
        assert!(b
            .mask
            .iter()
            .zip(&b.pixels)
            .all(|(&m, &v)| m == 0 || v == u32::MAX));

        // The ice ring is there: mean at radius 300 well above the plain frame's.
        let ring_mean = |f: &Frame| {
            let pts: Vec<u32> = (0..360)
                .map(|deg| {
                    let t = f64::from(deg).to_radians();
                    let (x, y) = (cx as f64 + 300.0 * t.cos(), cy as f64 + 300.0 * t.sin());
                    f.pixels[y as usize * f.nx + x as usize]
                })
                .filter(|&v| v != u32::MAX)
                .collect();
            pts.iter().map(|&v| f64::from(v)).sum::<f64>() / pts.len() as f64
        };
        assert!(
            ring_mean(&b) > 10.0 && ring_mean(&a) < 2.0,
            "{} vs {}",
            ring_mean(&b),
            ring_mean(&a)
        );

        // Hot pixels are unmasked and hot; edge spots sit within 1.5 px of a module edge.
        assert!(b.hot_pixels.len() >= 45);
        assert!(b
            .hot_pixels
            .iter()
            .all(|&(x, y)| b.mask[y * b.nx + x] == 0 && b.pixels[y * b.nx + x] >= 1000));
        let edge = b.spots.iter().filter(|s| s.at_edge).count();
        assert!((10..=30).contains(&edge), "{edge} edge spots of 40");
        for s in b.spots.iter().filter(|s| s.at_edge) {
            let fx = s.x % (MODULE_FAST + GAP_FAST) as f64;
            let fy = s.y % (MODULE_SLOW + GAP_SLOW) as f64;
            let near = fx
                .min(MODULE_FAST as f64 - fx)
                .min(fy)
                .min(MODULE_SLOW as f64 - fy);
            assert!(near <= 1.5, "edge spot {s:?} is {near} px from an edge");
        }

        // Away from the additions, the background is the plain frame's, pixel for pixel.
        let far = 700 * a.nx + 100;
        assert_eq!(a.pixels[far..far + 50], b.pixels[far..far + 50]);
    }
}
