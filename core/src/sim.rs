//! Synthetic EIGER2 frames with ground truth, deterministic for a seed.
//!
//! A frame has the EIGER2 module layout (1028 x 512 pixel modules, 12 px gaps between module
//! columns and 38 px between module rows) with the gaps at the dtype's maximum, as DECTRIS
//! writes them; a Poisson background that falls linearly from the centre to the corners; and
//! Gaussian spots whose photons are placed one by one, so counts are Poisson too.
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
}

/// A simulated frame: pixel values (row-major, `ny` rows of `nx`) and the spots in it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub nx: usize,
    pub ny: usize,
    pub pixel_type: PixelType,
    pub pixels: Vec<u32>,
    pub spots: Vec<Spot>,
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

/// Simulates one frame.
pub fn simulate(spec: &FrameSpec) -> Frame {
    let det = spec.detector;
    let (nx, ny) = (det.nx(), det.ny());
    let mut rng = Pcg64Mcg::seed_from_u64(spec.seed);
    let (cx, cy) = (nx as f64 / 2.0, ny as f64 / 2.0);
    let rmax = (cx * cx + cy * cy).sqrt();
    let slope = (spec.background_edge - spec.background_centre) / rmax;
    let mut pixels = vec![0u32; nx * ny];
    for (y, row) in pixels.chunks_exact_mut(nx).enumerate() {
        let dy = y as f64 + 0.5 - cy;
        for (x, px) in row.iter_mut().enumerate() {
            let dx = x as f64 + 0.5 - cx;
            let mean = spec.background_centre + slope * (dx * dx + dy * dy).sqrt();
            *px = poisson(&mut rng, mean);
        }
    }
    let max = spec.pixel_type.max();
    let mut spots = Vec::with_capacity(spec.spots);
    for _ in 0..spec.spots {
        let spot = Spot {
            x: rng.gen_range(0.0..nx as f64),
            y: rng.gen_range(0.0..ny as f64),
            sigma: rng.gen_range(0.6..1.2),
            // Log-uniform between 20 and 5000 photons.
            photons: (20f64.ln() + rng.gen::<f64>() * (5000f64.ln() - 20f64.ln())).exp() as u32,
        };
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
    for (y, row) in pixels.chunks_exact_mut(nx).enumerate() {
        for (x, px) in row.iter_mut().enumerate() {
            if det.is_gap(x, y) {
                *px = max;
            }
        }
    }
    Frame {
        nx,
        ny,
        pixel_type: spec.pixel_type,
        pixels,
        spots,
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
    }
}
