//! Bragg peak search on single frames, for hit finding and spot finding.
//!
//! Two finders with one output ([`Peak`]):
//!
//! - [`RadialParams`]: peakfinder8's semantics (CrystFEL, Cheetah, OnDA). Sigma-clipped statistics
//!   of every 1-pixel-wide annulus around the beam give each pixel a threshold; pixels above it
//!   seed 8-connected peaks, which are kept on their size, their signal-to-noise ratio against a
//!   local background and their maximum. The statistics are exact over every pixel and cheap:
//!   counts are integers, so each annulus keeps a histogram and the clipping passes read the
//!   histograms, not the pixels.
//! - [`DispersionParams`]: DIALS's `dispersion` and `dispersion_extended` thresholds. A pixel is
//!   strong when its local window is over-dispersed for Poisson counts and the pixel stands above
//!   the window's mean; strong pixels form 4-connected spots, filtered on size and on the distance
//!   from their brightest pixel to their centroid. The window sums slide over the frame row by
//!   row instead of living in a full summed-area table.
//!
//! Both honour the NXmx pixel mask (a masked pixel never seeds, grows or enters a statistic),
//! treat a pixel at or above the overload value (by default the type's maximum, where gaps,
//! dead and saturated pixels sit) as masked, and never let a peak or a statistic cross a module
//! gap: each module is a panel ([`Layout`]).
//!
//! Coordinates: `fs` (fast, x, column) and `ss` (slow, y, row) in pixels, with pixel `(i, j)`
//! covering `[i, i + 1) x [j, j + 1)`, so its centre is `(i + 0.5, j + 0.5)`. This is the
//! convention of CrystFEL's peak lists, of DIALS's `xyzobs.px` and of [`crate::sim`]'s spots.
//!
//! A [`PeakFinder`] is set up once per detector and keeps its buffers, so searching a frame
//! allocates little more than the peak list. A frame can also be fed piece by piece as a decoder
//! hands it over ([`PeakFinder::feed`], [`PeakFinder::decode_and_search_fused`]), so the first
//! pass runs while each block is in cache; [`PeakFinder::fuses`] says where that pays.

mod dispersion;
mod geometry;
mod label;
mod radial;
pub mod score;

pub use dispersion::DispersionParams;
pub use geometry::{Layout, Rect};
pub use radial::RadialParams;

use thiserror::Error;

use crate::codec::{Codec, CodecError};

/// Why a finder could not be set up or run.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PeakError {
    #[error("a frame of {nx} x {ny} pixels: both sides must be at least 1, the frame at most 2^32 pixels")]
    BadShape { nx: usize, ny: usize },
    #[error("the pixel mask has {actual} values, the frame {expected} pixels")]
    MaskSize { expected: usize, actual: usize },
    #[error("the frame has {actual} pixels, the finder was set up for {expected}")]
    FrameSize { expected: usize, actual: usize },
    #[error("the frame's pieces came out of order or short: {fed} of {expected} pixels in order")]
    Pieces { expected: usize, fed: usize },
    #[error("invalid module layout: {0}")]
    BadLayout(&'static str),
    #[error("invalid parameter {name}: {why}")]
    BadParameter { name: &'static str, why: String },
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// A stored pixel type: unsigned integer counts.
pub trait Pixel: bytemuck::Pod + Send + Sync {
    /// The type's maximum, where detectors put gaps, dead and saturated pixels.
    const MAX: u32;
    fn get(self) -> u32;
}

macro_rules! pixel {
    ($($t:ty),*) => {$(
        impl Pixel for $t {
            const MAX: u32 = <$t>::MAX as u32;
            #[inline(always)]
            fn get(self) -> u32 {
                self as u32
            }
        }
    )*};
}
pixel!(u8, u16, u32);

/// A found peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// Centroid along the fast axis, pixel centres at `.5` (see the module docs), weighted by
    /// the pixels' counts.
    pub fs: f64,
    /// Centroid along the slow axis.
    pub ss: f64,
    /// Counts above the local background, summed over the peak's pixels.
    pub total: f64,
    /// The brightest pixel's count.
    pub max: u32,
    pub pixels: u32,
    /// `total` over the standard deviation of the local background (peakfinder8's SNR).
    pub snr: f64,
    pub bbox: BBox,
}

/// A peak's pixels lie in `[fs0, fs1) x [ss0, ss1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    pub fs0: u32,
    pub ss0: u32,
    pub fs1: u32,
    pub ss1: u32,
}

/// What a search found on one frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Peaks {
    /// In raster order of their first pixel.
    pub peaks: Vec<Peak>,
    /// At least `min_peaks` peaks (and the frame not rejected).
    pub hit: bool,
    /// The dispersion finder's verdict that too many pixels were strong for spot finding to
    /// mean anything (DIALS `max_strong_pixel_fraction`); `peaks` is then empty.
    pub too_many_strong: bool,
}

/// Which finder, with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Finder {
    Radial(RadialParams),
    Dispersion(DispersionParams),
}

/// A finder set up for one detector (size, module layout, pixel mask).
pub struct PeakFinder {
    kind: Kind,
    nx: usize,
    ny: usize,
    min_peaks: usize,
    overload: Option<u32>,
}

enum Kind {
    Radial(Box<radial::Radial>),
    Dispersion(Box<dispersion::Dispersion>),
}

/// The default hit decision: this many peaks make a hit.
pub const DEFAULT_MIN_PEAKS: usize = 10;

impl PeakFinder {
    /// A finder for `nx` x `ny` frames with this NXmx pixel mask, modules from
    /// [`Layout::detect`].
    pub fn new(
        finder: Finder,
        nx: usize,
        ny: usize,
        mask: Option<&[u32]>,
    ) -> Result<PeakFinder, PeakError> {
        Self::with_layout(finder, Layout::detect(nx, ny, mask)?, mask)
    }

    /// A finder with the module layout given.
    pub fn with_layout(
        finder: Finder,
        layout: Layout,
        mask: Option<&[u32]>,
    ) -> Result<PeakFinder, PeakError> {
        let (nx, ny) = (layout.nx, layout.ny);
        let kind = match finder {
            Finder::Radial(p) => Kind::Radial(Box::new(radial::Radial::new(p, layout, mask)?)),
            Finder::Dispersion(p) => {
                Kind::Dispersion(Box::new(dispersion::Dispersion::new(p, layout, mask)?))
            }
        };
        Ok(PeakFinder {
            kind,
            nx,
            ny,
            min_peaks: DEFAULT_MIN_PEAKS,
            overload: None,
        })
    }

    /// Frames with at least `n` peaks are hits.
    pub fn set_min_peaks(&mut self, n: usize) {
        self.min_peaks = n;
    }

    /// Pixels at or above `value` count as masked (for example the detector's saturation
    /// value); `None` (the default) means the pixel type's maximum.
    pub fn set_overload(&mut self, value: Option<u32>) {
        self.overload = value;
    }

    /// The frame size this finder was set up for, `(nx, ny)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.nx, self.ny)
    }

    fn limit<T: Pixel>(&self) -> u32 {
        self.overload.map_or(T::MAX, |o| o.min(T::MAX))
    }

    fn check<T>(&self, frame: &[T]) -> Result<(), PeakError> {
        if frame.len() != self.nx * self.ny {
            return Err(PeakError::FrameSize {
                expected: self.nx * self.ny,
                actual: frame.len(),
            });
        }
        Ok(())
    }

    /// Searches a decoded frame (`ny` rows of `nx` pixels).
    pub fn search<T: Pixel>(&mut self, frame: &[T]) -> Result<Peaks, PeakError> {
        self.check(frame)?;
        let mut feed = self.feed::<T>();
        feed.piece(0, frame);
        feed.finish(frame)
    }

    /// Whether this finder is faster fed a frame piece by piece as it is decoded ([`Feed`])
    /// than given it decoded. Measured (`cargo xtask bench peaks`): the dispersion finder
    /// slides its windows over the rows as they arrive and saves a pass over the frame; the
    /// radial finder's histograms, kept beside the decoder's, slow the decoder more than the
    /// pass saves.
    pub fn fuses(&self) -> bool {
        matches!(self.kind, Kind::Dispersion(_))
    }

    /// Decodes `chunk` (one frame, as `codec` stores it) into `frame` and searches it, the
    /// faster way for this finder ([`PeakFinder::fuses`]). The decoded bytes are taken in
    /// native byte order, as the HDF5 plugins and neggia-rs hand them over.
    pub fn decode_and_search<T: Pixel>(
        &mut self,
        codec: &Codec,
        chunk: &[u8],
        frame: &mut [T],
    ) -> Result<Peaks, PeakError> {
        self.check(frame)?;
        if !self.fuses() {
            codec.decode(chunk, bytemuck::cast_slice_mut(frame))?;
            return self.search(frame);
        }
        self.decode_and_search_fused(codec, chunk, frame)
    }

    /// [`PeakFinder::decode_and_search`], always fused: the finder's first pass runs over each
    /// block as the decoder hands it over, while it is in cache.
    pub fn decode_and_search_fused<T: Pixel>(
        &mut self,
        codec: &Codec,
        chunk: &[u8],
        frame: &mut [T],
    ) -> Result<Peaks, PeakError> {
        self.check(frame)?;
        let size = size_of::<T>();
        let mut feed = self.feed::<T>();
        codec.decode_with(chunk, bytemuck::cast_slice_mut(frame), |at, part| {
            feed.piece(at / size, bytemuck::cast_slice(part))
        })?;
        feed.finish(frame)
    }

    /// Starts a search of a frame that arrives piece by piece (from a decoder, or
    /// `neggia::nxmx::Master::read_frame_with`): hand each piece to [`Feed::piece`] as it comes,
    /// then the whole frame to [`Feed::finish`].
    pub fn feed<T: Pixel>(&mut self) -> Feed<'_, T> {
        let limit = self.limit::<T>();
        match &mut self.kind {
            Kind::Radial(r) => r.begin(),
            Kind::Dispersion(d) => d.begin(),
        }
        Feed {
            finder: self,
            limit,
            next: 0,
            in_order: true,
            pixel: std::marker::PhantomData,
        }
    }

    fn finish<T: Pixel>(&mut self, frame: &[T], limit: u32) -> Peaks {
        let (peaks, too_many_strong) = match &mut self.kind {
            Kind::Radial(r) => (r.finish(frame, limit), false),
            Kind::Dispersion(d) => d.finish(frame, limit),
        };
        Peaks {
            hit: !too_many_strong && peaks.len() >= self.min_peaks,
            peaks,
            too_many_strong,
        }
    }
}

/// A search being fed a frame piece by piece ([`PeakFinder::feed`]).
pub struct Feed<'a, T: Pixel> {
    finder: &'a mut PeakFinder,
    limit: u32,
    /// The next pixel expected, and whether every piece came in order.
    next: usize,
    in_order: bool,
    pixel: std::marker::PhantomData<T>,
}

impl<T: Pixel> Feed<'_, T> {
    /// The frame's pixels `first..first + pixels.len()`, which must follow the last piece.
    pub fn piece(&mut self, first: usize, pixels: &[T]) {
        let n = self.finder.nx * self.finder.ny;
        if !self.in_order || first != self.next || pixels.len() > n - first {
            self.in_order = false;
            return;
        }
        match &mut self.finder.kind {
            Kind::Radial(r) => r.feed(first, pixels, self.limit),
            Kind::Dispersion(d) => d.feed(first, pixels, self.limit),
        }
        self.next += pixels.len();
    }

    /// Finishes the search, `frame` being the whole frame the pieces came from.
    pub fn finish(self, frame: &[T]) -> Result<Peaks, PeakError> {
        self.finder.check(frame)?;
        if !self.in_order || self.next != frame.len() {
            return Err(PeakError::Pieces {
                expected: frame.len(),
                fed: self.next,
            });
        }
        Ok(self.finder.finish(frame, self.limit))
    }
}

/// Which compilation of the finders' inner loops runs: each is written once, `#[inline(always)]`,
/// and compiled for the baseline and for AVX2 (as `crate::frame::xds` does); the radial
/// finder's histogram kernel also has an AVX-512 version. `HDRMX_SIMD` caps the choice as it
/// does the transpose kernels' (`avx2`: no AVX-512; `sse2` or lower: the baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 (F, BW) where a kernel has it, AVX2 elsewhere; only chosen with both.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Simd {
    /// The best the CPU has that `HDRMX_SIMD` does not cap.
    pub(crate) fn detect() -> Simd {
        Simd::available().pop().unwrap_or(Simd::Baseline)
    }

    /// Every choice this CPU runs under the `HDRMX_SIMD` cap, slowest first (for tests).
    pub(crate) fn available() -> Vec<Simd> {
        #[allow(unused_mut)]
        let mut all = vec![Simd::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::codec::transpose::Kernel;
            let best = Kernel::best();
            if best >= Kernel::Avx2 && Kernel::Avx2.is_available() {
                all.push(Simd::Avx2);
                if best >= Kernel::Avx512 && Kernel::Avx512.is_available() {
                    all.push(Simd::Avx512);
                }
            }
        }
        all
    }
}

/// One bit per pixel, cleared after each frame by walking the pixels that were set.
#[derive(Clone, Debug, Default)]
pub(crate) struct Marks {
    bits: Vec<u64>,
    set: Vec<u32>,
}

impl Marks {
    pub fn new(pixels: usize) -> Marks {
        Marks {
            bits: vec![0; pixels.div_ceil(64)],
            set: Vec::new(),
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.bits[i / 64] >> (i % 64) & 1 != 0
    }

    #[inline]
    pub fn set(&mut self, i: usize) {
        if !self.get(i) {
            self.bits[i / 64] |= 1 << (i % 64);
            self.set.push(i as u32);
        }
    }

    pub fn clear(&mut self) {
        for &i in &self.set {
            self.bits[i as usize / 64] = 0;
        }
        self.set.clear();
    }
}

/// The background around a peak, as peakfinder8 measures it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LocalBackground {
    pub offset: f64,
    pub sigma: f64,
    /// The brightest background pixel (0 when there is none).
    pub max: f64,
    pub pixels: usize,
}

/// The smallest standard deviation a background is given. peakfinder8 uses this value when a
/// background has no pixels or a negative variance but keeps an exact 0 (every background pixel
/// equal, as on a dark detector), which then rejects every peak; we use it for all three.
pub(crate) const MIN_SIGMA: f64 = 0.01;

/// peakfinder8's local background: the pixels within `2 * radius` of `(cx, cy)` in the panel
/// (a `[-2r, 2r)` square cut to the disc) that `include` accepts; `None` when there are none.
pub(crate) fn local_background<T: Pixel>(
    frame: &[T],
    nx: usize,
    panel: Rect,
    (cx, cy): (isize, isize),
    radius: usize,
    mut include: impl FnMut(usize, u32) -> bool,
) -> Option<LocalBackground> {
    let w = 2 * radius as isize;
    let (mut n, mut sum, mut sum2, mut max) = (0usize, 0f64, 0f64, 0f64);
    for dy in -w..w {
        for dx in -w..w {
            let (x, y) = (cx + dx, cy + dy);
            if !panel.contains(x, y) || dx * dx + dy * dy > w * w {
                continue;
            }
            let i = y as usize * nx + x as usize;
            let v = frame[i].get();
            if include(i, v) {
                let v = f64::from(v);
                n += 1;
                sum += v;
                sum2 += v * v;
                max = max.max(v);
            }
        }
    }
    (n > 0).then(|| {
        let offset = sum / n as f64;
        let var = sum2 / n as f64 - offset * offset;
        LocalBackground {
            offset,
            sigma: var.max(0.0).sqrt().max(MIN_SIGMA),
            max,
            pixels: n,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Bitshuffle, Compression, Lz4};
    use crate::sim::{simulate, Detector, FrameSpec, PixelType};

    fn finders() -> [Finder; 3] {
        [
            Finder::Radial(RadialParams::default()),
            Finder::Dispersion(DispersionParams::default()),
            Finder::Dispersion(DispersionParams::extended()),
        ]
    }

    #[test]
    fn decoding_and_searching_together_finds_the_same() {
        let mut spec = FrameSpec::new(Detector::EIGER2_1M, PixelType::U16, 1.0, 80, 11);
        spec.background_edge = 0.2;
        spec.dead_fraction = 0.001;
        let f = simulate(&spec);
        let px16: Vec<u16> = f.pixels.iter().map(|&v| v as u16).collect();
        let codecs = [
            Codec::Bitshuffle(Bitshuffle::new(2, Compression::Lz4).unwrap()),
            Codec::Lz4(Lz4::default()),
        ];
        for finder in finders() {
            let mut pf = PeakFinder::new(finder, f.nx, f.ny, Some(&f.mask)).unwrap();
            let expected = pf.search(&px16).unwrap();
            assert!(expected.peaks.len() > 40 && expected.hit);
            for codec in &codecs {
                let chunk = codec.encode(bytemuck::cast_slice(&px16)).unwrap();
                for fused in [false, true] {
                    let mut buf = vec![0u16; px16.len()];
                    let found = if fused {
                        pf.decode_and_search_fused(codec, &chunk, &mut buf)
                    } else {
                        pf.decode_and_search(codec, &chunk, &mut buf)
                    };
                    assert_eq!(found.unwrap(), expected);
                    assert_eq!(buf, px16);
                }
            }
            // Fed in uneven pieces, as a reader hands them over.
            let mut feed = pf.feed();
            let mut at = 0;
            for piece in px16.chunks(777).chain(std::iter::once(&[][..])) {
                feed.piece(at, piece);
                at += piece.len();
            }
            assert_eq!(feed.finish(&px16).unwrap(), expected);
            // The same frame as uint32 finds the same.
            let mut pf32 = PeakFinder::new(pf_finder(&pf), f.nx, f.ny, Some(&f.mask)).unwrap();
            let px32: Vec<u32> = px16
                .iter()
                .map(|&v| {
                    if v == u16::MAX {
                        u32::MAX
                    } else {
                        u32::from(v)
                    }
                })
                .collect();
            assert_eq!(pf32.search(&px32).unwrap(), expected);
        }
    }

    fn pf_finder(pf: &PeakFinder) -> Finder {
        match &pf.kind {
            Kind::Radial(r) => Finder::Radial(r.params().clone()),
            Kind::Dispersion(d) => Finder::Dispersion(d.params().clone()),
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut pf =
            PeakFinder::new(Finder::Radial(RadialParams::default()), 10, 10, None).unwrap();
        assert_eq!(
            pf.search(&[0u16; 99]),
            Err(PeakError::FrameSize {
                expected: 100,
                actual: 99
            })
        );
        let codec = Codec::Bitshuffle(Bitshuffle::new(2, Compression::Lz4).unwrap());
        let err = pf
            .decode_and_search(&codec, &[1, 2, 3], &mut [0u16; 100])
            .unwrap_err();
        assert!(matches!(err, PeakError::Codec(_)), "{err}");
        assert!(matches!(
            PeakFinder::new(
                Finder::Radial(RadialParams::default()),
                10,
                10,
                Some(&[0; 10])
            ),
            Err(PeakError::MaskSize { .. })
        ));
        assert!(PeakError::BadShape { nx: 0, ny: 1 }
            .to_string()
            .contains("0 x 1"));
    }

    #[test]
    fn hits_need_min_peaks() {
        let f = simulate(&FrameSpec::new(
            Detector::EIGER2_1M,
            PixelType::U32,
            0.1,
            30,
            4,
        ));
        let mut pf = PeakFinder::new(
            Finder::Radial(RadialParams::default()),
            f.nx,
            f.ny,
            Some(&f.mask),
        )
        .unwrap();
        let n = pf.search(&f.pixels).unwrap().peaks.len();
        assert!(n >= 20, "{n} peaks");
        pf.set_min_peaks(n);
        assert!(pf.search(&f.pixels).unwrap().hit);
        pf.set_min_peaks(n + 1);
        assert!(!pf.search(&f.pixels).unwrap().hit);
    }
}
