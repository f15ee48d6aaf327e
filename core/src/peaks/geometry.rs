//! Where a finder may look: the detector's modules (panels) and, within them, the runs of
//! pixels that are not masked.
//!
//! A finder never reads the 4-byte NXmx mask per pixel per frame. It keeps, once per detector,
//! the runs of usable pixels of every row (on an EIGER the mask is mostly module gaps, so a row
//! has a handful) and a bitmap for the random lookups of peak growth.

use super::PeakError;
use crate::sim::{Detector, GAP_FAST, GAP_SLOW, MODULE_FAST, MODULE_SLOW};

/// The module grid of a detector: the extents of the module columns along the fast axis and of
/// the module rows along the slow axis. A panel is one module column crossed with one module
/// row; pixels outside every panel are gaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub nx: usize,
    pub ny: usize,
    /// `[x0, x1)` of each module column, in order.
    pub columns: Vec<(usize, usize)>,
    /// `[y0, y1)` of each module row, in order.
    pub rows: Vec<(usize, usize)>,
}

impl Layout {
    /// One panel covering the whole frame.
    pub fn whole(nx: usize, ny: usize) -> Layout {
        Layout {
            nx,
            ny,
            columns: vec![(0, nx)],
            rows: vec![(0, ny)],
        }
    }

    /// The module grid of an EIGER2 detector.
    pub fn eiger2(det: Detector) -> Layout {
        let runs = |n: usize, size: usize, gap: usize| {
            (0..n)
                .map(|i| (i * (size + gap), i * (size + gap) + size))
                .collect()
        };
        Layout {
            nx: det.nx(),
            ny: det.ny(),
            columns: runs(det.modules_fast, MODULE_FAST, GAP_FAST),
            rows: runs(det.modules_slow, MODULE_SLOW, GAP_SLOW),
        }
    }

    /// The module grid of a frame: from the pixel mask when there is one (a column or row whose
    /// every pixel is masked separates modules), else the EIGER2 grid when the frame has an
    /// EIGER2 size, else one panel.
    pub fn detect(nx: usize, ny: usize, mask: Option<&[u32]>) -> Result<Layout, PeakError> {
        check_size(nx, ny)?;
        let Some(mask) = mask else {
            return Ok(Detector::ALL
                .into_iter()
                .find(|d| d.nx() == nx && d.ny() == ny)
                .map_or_else(|| Layout::whole(nx, ny), Layout::eiger2));
        };
        check_mask(nx, ny, mask)?;
        let mut column_open = vec![false; nx];
        let mut row_open = vec![false; ny];
        for (y, row) in mask.chunks_exact(nx).enumerate() {
            for (x, &bits) in row.iter().enumerate() {
                if bits == 0 {
                    column_open[x] = true;
                    row_open[y] = true;
                }
            }
        }
        Ok(Layout {
            nx,
            ny,
            columns: runs_of(&column_open),
            rows: runs_of(&row_open),
        })
    }

    /// The panels as `(x0, x1, y0, y1)`, half-open.
    pub fn panels(&self) -> impl Iterator<Item = Rect> + '_ {
        self.rows.iter().flat_map(move |&(y0, y1)| {
            self.columns
                .iter()
                .map(move |&(x0, x1)| Rect { x0, x1, y0, y1 })
        })
    }
}

/// A half-open rectangle of pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: usize,
    pub x1: usize,
    pub y0: usize,
    pub y1: usize,
}

impl Rect {
    pub fn contains(&self, x: isize, y: isize) -> bool {
        x >= self.x0 as isize
            && x < self.x1 as isize
            && y >= self.y0 as isize
            && y < self.y1 as isize
    }
}

/// The runs of `true` in `open`, as half-open ranges.
fn runs_of(open: &[bool]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &o) in open.iter().chain([&false]).enumerate() {
        match (o, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    runs
}

fn check_size(nx: usize, ny: usize) -> Result<(), PeakError> {
    // Pixel indices are kept in u32.
    if nx == 0 || ny == 0 || nx.checked_mul(ny).is_none_or(|n| n > u32::MAX as usize) {
        return Err(PeakError::BadShape { nx, ny });
    }
    Ok(())
}

fn check_mask(nx: usize, ny: usize, mask: &[u32]) -> Result<(), PeakError> {
    if mask.len() != nx * ny {
        return Err(PeakError::MaskSize {
            expected: nx * ny,
            actual: mask.len(),
        });
    }
    Ok(())
}

/// The usable pixels of a detector for one finder: unmasked, inside a panel, and accepted by the
/// finder's own test (resolution limits).
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub nx: usize,
    pub ny: usize,
    /// Index into `panels` for each column and row; `NONE` in gaps.
    column_of: Vec<u16>,
    row_of: Vec<u16>,
    layout: Layout,
    /// Runs `[x0, x1)` of usable pixels, row by row: row `y` has `runs[starts[y]..starts[y + 1]]`.
    starts: Vec<u32>,
    runs: Vec<(u32, u32)>,
    /// One bit per pixel: usable.
    bits: Vec<u64>,
}

const NONE: u16 = u16::MAX;

impl Geometry {
    pub fn new(
        layout: Layout,
        mask: Option<&[u32]>,
        keep: impl Fn(usize, usize) -> bool,
    ) -> Result<Geometry, PeakError> {
        let (nx, ny) = (layout.nx, layout.ny);
        check_size(nx, ny)?;
        if let Some(mask) = mask {
            check_mask(nx, ny, mask)?;
        }
        let index = |n: usize, runs: &[(usize, usize)], what: &'static str| {
            let mut of = vec![NONE; n];
            if runs.len() >= NONE as usize {
                return Err(PeakError::BadLayout(
                    "more than 65534 module rows or columns",
                ));
            }
            for (i, &(a, b)) in runs.iter().enumerate() {
                if a >= b || b > n || of[a..b].iter().any(|&o| o != NONE) {
                    return Err(PeakError::BadLayout(what));
                }
                of[a..b].fill(i as u16);
            }
            Ok(of)
        };
        let column_of = index(
            nx,
            &layout.columns,
            "module columns overlap or leave the frame",
        )?;
        let row_of = index(ny, &layout.rows, "module rows overlap or leave the frame")?;
        let mut starts = Vec::with_capacity(ny + 1);
        let mut runs = Vec::new();
        let mut bits = vec![0u64; (nx * ny).div_ceil(64)];
        for y in 0..ny {
            starts.push(runs.len() as u32);
            if row_of[y] == NONE {
                continue;
            }
            let mrow = mask.map(|m| &m[y * nx..(y + 1) * nx]);
            let ok =
                |x: usize| column_of[x] != NONE && mrow.is_none_or(|m| m[x] == 0) && keep(x, y);
            let mut x = 0;
            while x < nx {
                if !ok(x) {
                    x += 1;
                    continue;
                }
                // A run never crosses from one panel into the next.
                let (start, panel) = (x, column_of[x]);
                while x < nx && column_of[x] == panel && ok(x) {
                    let i = y * nx + x;
                    bits[i / 64] |= 1 << (i % 64);
                    x += 1;
                }
                runs.push((start as u32, x as u32));
            }
        }
        starts.push(runs.len() as u32);
        Ok(Geometry {
            nx,
            ny,
            column_of,
            row_of,
            layout,
            starts,
            runs,
            bits,
        })
    }

    /// The runs of usable pixels of row `y`.
    #[inline]
    pub fn runs(&self, y: usize) -> &[(u32, u32)] {
        &self.runs[self.starts[y] as usize..self.starts[y + 1] as usize]
    }

    /// Whether pixel `i` (row-major) is usable.
    #[inline]
    pub fn usable(&self, i: usize) -> bool {
        self.bits[i / 64] >> (i % 64) & 1 != 0
    }

    /// The word of the usable bitmap that holds pixel `i`'s bit (to prefetch it).
    #[inline]
    pub fn usable_word(&self, i: usize) -> &u64 {
        &self.bits[i / 64]
    }

    /// The panel holding pixel (x, y), if any.
    #[inline]
    pub fn panel(&self, x: usize, y: usize) -> Option<Rect> {
        let (c, r) = (self.column_of[x], self.row_of[y]);
        if c == NONE || r == NONE {
            return None;
        }
        let (x0, x1) = self.layout.columns[c as usize];
        let (y0, y1) = self.layout.rows[r as usize];
        Some(Rect { x0, x1, y0, y1 })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The module row `[y0, y1)` holding row `y`, if it is not a gap.
    #[inline]
    pub fn panel_rows(&self, y: usize) -> Option<(usize, usize)> {
        let r = self.row_of[y];
        (r != NONE).then(|| self.layout.rows[r as usize])
    }

    #[cfg(test)]
    pub fn usable_pixels(&self) -> usize {
        self.runs.iter().map(|&(a, b)| (b - a) as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{simulate, FrameSpec, PixelType};

    #[test]
    fn the_mask_gives_the_eiger2_module_grid() {
        let mut spec = FrameSpec::new(Detector::EIGER2_4M, PixelType::U16, 0.1, 0, 1);
        spec.dead_fraction = 0.001;
        spec.beamstop_radius = 30.0;
        let f = simulate(&spec);
        let detected = Layout::detect(f.nx, f.ny, Some(&f.mask)).unwrap();
        assert_eq!(detected, Layout::eiger2(Detector::EIGER2_4M));
        assert_eq!(
            Layout::detect(f.nx, f.ny, None).unwrap(),
            Layout::eiger2(Detector::EIGER2_4M)
        );
        assert_eq!(Layout::detect(10, 7, None).unwrap(), Layout::whole(10, 7));
        assert_eq!(detected.panels().count(), 8);
    }

    #[test]
    fn runs_skip_masked_pixels_and_never_cross_panels() {
        // Two 3-pixel panels side by side, no gap between them, and one masked pixel.
        let layout = Layout {
            nx: 6,
            ny: 2,
            columns: vec![(0, 3), (3, 6)],
            rows: vec![(0, 2)],
        };
        let mut mask = vec![0u32; 12];
        mask[7] = 2;
        let g = Geometry::new(layout, Some(&mask), |_, _| true).unwrap();
        assert_eq!(g.runs(0), &[(0, 3), (3, 6)]);
        assert_eq!(g.runs(1), &[(0, 1), (2, 3), (3, 6)]);
        assert!(g.usable(6) && !g.usable(7) && g.usable(8));
        assert_eq!(g.usable_pixels(), 11);
        assert_eq!(
            g.panel(4, 1),
            Some(Rect {
                x0: 3,
                x1: 6,
                y0: 0,
                y1: 2
            })
        );
    }

    #[test]
    fn bad_shapes_and_masks_are_errors() {
        assert!(matches!(
            Layout::detect(0, 5, None),
            Err(PeakError::BadShape { .. })
        ));
        assert!(matches!(
            Layout::detect(4, 4, Some(&[0; 15])),
            Err(PeakError::MaskSize {
                expected: 16,
                actual: 15
            })
        ));
        let overlapping = Layout {
            nx: 4,
            ny: 4,
            columns: vec![(0, 3), (2, 4)],
            rows: vec![(0, 4)],
        };
        assert!(matches!(
            Geometry::new(overlapping, None, |_, _| true),
            Err(PeakError::BadLayout(_))
        ));
    }
}
