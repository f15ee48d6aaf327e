//! The geometry of reduced data: what the master of a binned, summed or cut dataset says, so that
//! every reader (XDS, dxtbx, the nxmx package) puts each output pixel where its input pixels were.
//!
//! The writer derives the module from the metadata: `data_origin` is `[0, 0]`, `data_size` is
//! `[ny, nx]`, the fast (slow) pixel direction is one `x_pixel_size` (`y_pixel_size`) along -x
//! (-y), and the module corner sits `beam_center * pixel_size` from the beam. So scaling the
//! pixel size and the beam centre together keeps the corner, and the beam, where they were.
//! Beam centres are in pixels from the outer edge of pixel (0, 0): a bin edge at input pixel
//! `n * i` is output pixel `i`, and an ROI starting at input pixel `x` moves the centre by `x`.
use crate::{Error, Metadata, Result};
use hdrmx_core::reduce::bin;
use hdrmx_core::reduce::roi::{self, Roi};

/// Reduced frames are uint32: bin and frame sums need the room.
const REDUCED_ELEM_SIZE: usize = 4;
/// Their `bit_depth_readout`. dxtbx's FormatNXmx masks the top two values of this depth, so
/// keeping a uint16 source's 16 would turn sums of 65534 and 65535 into masked pixels.
const REDUCED_BIT_DEPTH: i64 = 32;

/// `saturation_value` of a sum over `count` pixels or frames: a pixel is flagged when any of its
/// inputs reached saturation, and `core::reduce` makes such a sum at least `saturation * count`.
/// Clamped to the largest count a reduced uint32 pixel holds (u32::MAX marks invalid pixels).
fn scaled_saturation(saturation: i64, count: usize) -> i64 {
    let top = i64::from(u32::MAX - 1);
    saturation.saturating_mul(count as i64).min(top)
}

impl Metadata {
    /// The metadata of frames binned `n` x `n` by `hdrmx_core::reduce::bin::bin`: uint32 bin
    /// sums, rows and columns that do not fill a bin dropped, pixel sizes x `n`, beam centre / `n`,
    /// `saturation_value` x `n`², the pixel mask OR-ed over each bin.
    pub fn binned(&self, n: usize) -> Result<Metadata> {
        if n == 0 {
            return Err(Error::Invalid("bin factor 0".into()));
        }
        let (nx, ny) = bin::binned_shape(self.nx, self.ny, n);
        if nx == 0 || ny == 0 {
            return Err(Error::Invalid(format!(
                "{} x {} pixels binned {n} x {n} leave no pixel",
                self.nx, self.ny
            )));
        }
        let f = n as f64;
        let pixel_mask = if self.pixel_mask.is_empty() {
            Vec::new()
        } else {
            self.check_mask()?;
            bin::bin_mask(&self.pixel_mask, self.nx, self.ny, n)
        };
        Ok(Metadata {
            nx,
            ny,
            elem_size: REDUCED_ELEM_SIZE,
            bit_depth_readout: REDUCED_BIT_DEPTH,
            x_pixel_size: self.x_pixel_size * f,
            y_pixel_size: self.y_pixel_size * f,
            beam_center_x: self.beam_center_x / f,
            beam_center_y: self.beam_center_y / f,
            saturation_value: scaled_saturation(self.saturation_value, n * n),
            pixel_mask,
            ..self.clone()
        })
    }

    /// The metadata of groups of `k` consecutive frames summed by
    /// `hdrmx_core::reduce::sum::Summer`: uint32 sums, each output frame covering `k` input frames
    /// (count and frame time x `k`, omega increment x `k`, omega start unchanged), saturation x `k`.
    /// The pixel mask is the same for every frame, so it stays.
    pub fn summed(&self, k: usize) -> Result<Metadata> {
        if k == 0 {
            return Err(Error::Invalid("sum of 0 frames".into()));
        }
        let f = k as f64;
        Ok(Metadata {
            elem_size: REDUCED_ELEM_SIZE,
            bit_depth_readout: REDUCED_BIT_DEPTH,
            count_time: self.count_time * f,
            frame_time: self.frame_time * f,
            omega_increment: self.omega_increment * f,
            saturation_value: scaled_saturation(self.saturation_value, k),
            ..self.clone()
        })
    }

    /// The metadata of the rectangle `roi` cut out of every frame by
    /// `hdrmx_core::reduce::roi::cut`: its size, the beam centre moved by the ROI origin (it may
    /// fall outside the ROI), the mask cut the same way. Values and their type are unchanged.
    pub fn cut(&self, roi: &Roi) -> Result<Metadata> {
        roi.check(self.nx, self.ny).map_err(Error::Invalid)?;
        let pixel_mask = if self.pixel_mask.is_empty() {
            Vec::new()
        } else {
            self.check_mask()?;
            let mut out = vec![0; roi.width * roi.height];
            roi::cut(&self.pixel_mask, self.nx, roi, &mut out);
            out
        };
        Ok(Metadata {
            nx: roi.width,
            ny: roi.height,
            beam_center_x: self.beam_center_x - roi.x as f64,
            beam_center_y: self.beam_center_y - roi.y as f64,
            pixel_mask,
            ..self.clone()
        })
    }

    fn check_mask(&self) -> Result<()> {
        if self.pixel_mask.len() != self.nx * self.ny {
            return Err(Error::Invalid(format!(
                "pixel mask of {} values for {} x {} pixels",
                self.pixel_mask.len(),
                self.ny,
                self.nx
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(nx: usize, ny: usize) -> Metadata {
        Metadata {
            nx,
            ny,
            elem_size: 2,
            x_pixel_size: 75e-6,
            y_pixel_size: 80e-6,
            distance: 0.15,
            beam_center_x: 5.5,
            beam_center_y: 3.25,
            wavelength: 1.0,
            omega_start: 10.0,
            omega_increment: 0.1,
            count_time: 0.001,
            frame_time: 0.002,
            sensor_material: "CdTe".into(),
            sensor_thickness: 750e-6,
            saturation_value: 1000,
            underload_value: -1,
            bit_depth_readout: 16,
            description: "test".into(),
            start_time: "2026-01-01T00:00:00Z".into(),
            pixel_mask: (0..nx * ny)
                .map(|i| match i {
                    0 => 1,
                    13 => 8,
                    14 => 2,
                    _ => 0,
                })
                .collect(),
        }
    }

    /// Where the module corner sits, in metres from the beam: unchanged by any reduction.
    fn corner(m: &Metadata) -> (f64, f64) {
        (
            m.beam_center_x * m.x_pixel_size,
            m.beam_center_y * m.y_pixel_size,
        )
    }

    #[test]
    fn binning_scales_pixels_and_beam_and_ors_the_mask() {
        // 7 x 5 binned by 2: the last column and row do not fill a bin and are dropped.
        let m = meta(7, 5);
        let b = m.binned(2).unwrap();
        assert_eq!((b.nx, b.ny, b.elem_size), (3, 2, 4));
        assert_eq!((b.x_pixel_size, b.y_pixel_size), (150e-6, 160e-6));
        assert_eq!((b.beam_center_x, b.beam_center_y), (2.75, 1.625));
        let (cx, cy) = corner(&m);
        let (bx, by) = corner(&b);
        assert!((cx - bx).abs() < 1e-15 && (cy - by).abs() < 1e-15);
        assert_eq!(b.saturation_value, 4000);
        // uint32 sums: a 16-bit source's depth would make dxtbx mask sums of 65534 and 65535.
        assert_eq!((m.bit_depth_readout, b.bit_depth_readout), (16, 32));
        // Input pixel 0 (row 0, col 0) -> bin (0, 0); 13 = (1, 6) is in the dropped column;
        // 14 = (2, 0) -> bin (1, 0).
        assert_eq!(b.pixel_mask, vec![1, 0, 0, 2, 0, 0]);
        // What is not geometry is kept.
        assert_eq!(
            (b.count_time, b.omega_increment, b.distance),
            (0.001, 0.1, 0.15)
        );
        assert_eq!(b.description, m.description);
    }

    #[test]
    fn binning_by_three_and_four() {
        let m = meta(9, 8);
        let b3 = m.binned(3).unwrap();
        assert_eq!((b3.nx, b3.ny), (3, 2));
        assert_eq!(b3.beam_center_x, 5.5 / 3.0);
        assert!((b3.x_pixel_size - 225e-6).abs() < 1e-18);
        assert_eq!(b3.saturation_value, 9000);
        // 13 = (1, 4) -> bin (0, 1); 14 = (1, 5) -> bin (0, 1) too: bits 8 | 2.
        assert_eq!(b3.pixel_mask, vec![1, 10, 0, 0, 0, 0]);
        let b4 = m.binned(4).unwrap();
        assert_eq!((b4.nx, b4.ny, b4.saturation_value), (2, 2, 16000));
    }

    #[test]
    fn binning_without_a_mask_and_errors() {
        let mut m = meta(8, 8);
        m.pixel_mask.clear();
        assert!(m.binned(2).unwrap().pixel_mask.is_empty());
        assert!(m.binned(0).is_err());
        let e = meta(3, 8).binned(4).unwrap_err().to_string();
        assert!(e.contains("leave no pixel"), "{e}");
        let mut lying = meta(8, 8);
        lying.pixel_mask.pop();
        assert!(lying
            .binned(2)
            .unwrap_err()
            .to_string()
            .contains("63 values"));
    }

    #[test]
    fn saturation_clamps_to_the_uint32_range() {
        let mut m = meta(8, 8);
        m.saturation_value = i64::from(i32::MAX);
        assert_eq!(
            m.binned(4).unwrap().saturation_value,
            i64::from(u32::MAX - 1)
        );
        assert_eq!(
            m.summed(3).unwrap().saturation_value,
            i64::from(u32::MAX - 1)
        );
        m.saturation_value = i64::MAX;
        assert_eq!(
            m.binned(2).unwrap().saturation_value,
            i64::from(u32::MAX - 1)
        );
    }

    #[test]
    fn summing_scales_times_and_the_scan() {
        let m = meta(7, 5);
        let s = m.summed(10).unwrap();
        assert_eq!((s.nx, s.ny, s.elem_size), (7, 5, 4));
        assert!((s.count_time - 0.01).abs() < 1e-15 && (s.frame_time - 0.02).abs() < 1e-15);
        assert!((s.omega_increment - 1.0).abs() < 1e-12);
        assert_eq!(s.omega_start, 10.0);
        assert_eq!(s.saturation_value, 10_000);
        assert_eq!(s.bit_depth_readout, 32);
        assert_eq!(s.pixel_mask, m.pixel_mask);
        assert_eq!((s.beam_center_x, s.x_pixel_size), (5.5, 75e-6));
        assert!(m.summed(0).is_err());
    }

    #[test]
    fn an_roi_moves_the_beam_and_cuts_the_mask() {
        let m = meta(7, 5);
        let roi = Roi {
            x: 5,
            y: 1,
            width: 2,
            height: 3,
        };
        let c = m.cut(&roi).unwrap();
        assert_eq!((c.nx, c.ny, c.elem_size), (2, 3, 2));
        assert_eq!((c.beam_center_x, c.beam_center_y), (0.5, 2.25));
        assert_eq!((c.x_pixel_size, c.saturation_value), (75e-6, 1000));
        // 13 = (1, 6) -> (0, 1); 14 = (2, 0) is outside.
        assert_eq!(c.pixel_mask, vec![0, 8, 0, 0, 0, 0]);
        // The corner moves by the ROI origin, in metres.
        let (cx, cy) = corner(&m);
        let (rx, ry) = corner(&c);
        assert!((cx - rx - 5.0 * 75e-6).abs() < 1e-15 && (cy - ry - 80e-6).abs() < 1e-15);
        let outside = Roi {
            x: 6,
            y: 0,
            width: 2,
            height: 1,
        };
        assert!(m.cut(&outside).is_err());
    }
}
