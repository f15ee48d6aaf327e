//! Statistics that must hold on simulated EIGER2 frames: binning and summing keep every count.

use hdrmx_core::reduce::bin::{bin, bin_mask, binned_shape};
use hdrmx_core::reduce::sum::Summer;
use hdrmx_core::sim::{simulate, Detector, Frame, FrameSpec, PixelType};

fn frame(pixel_type: PixelType, background: f64, seed: u64, dead: f64) -> Frame {
    let mut spec = FrameSpec::new(Detector::EIGER2_4M, pixel_type, background, 400, seed);
    spec.dead_fraction = dead;
    spec.beamstop_radius = 40.0;
    spec.hot_pixels = 20;
    simulate(&spec)
}

/// Binned totals equal the source's valid counts: every valid pixel of an unmasked bin is in
/// its bin's sum, and the counts left out are exactly those of masked bins and dropped edges.
#[test]
fn binning_keeps_every_valid_count() {
    for (pixel_type, seed) in [(PixelType::U16, 1), (PixelType::U32, 2)] {
        let f = frame(pixel_type, 2.0, seed, 1e-4);
        let max = pixel_type.max();
        let valid = |i: usize| f.mask[i] == 0 && f.pixels[i] != max;
        let source_total: u64 = (0..f.pixels.len())
            .filter(|&i| valid(i))
            .map(|i| u64::from(f.pixels[i]))
            .sum();
        for n in 2..=4 {
            let (bx, by) = binned_shape(f.nx, f.ny, n);
            let mut out = vec![0u32; bx * by];
            match pixel_type {
                PixelType::U16 => {
                    let src: Vec<u16> = f.pixels.iter().map(|&v| v as u16).collect();
                    bin(&src, f.nx, f.ny, n, Some(&f.mask), None, &mut out);
                }
                PixelType::U32 => bin(&f.pixels, f.nx, f.ny, n, Some(&f.mask), None, &mut out),
            }
            let bmask = bin_mask(&f.mask, f.nx, f.ny, n);
            let binned_total: u64 = out
                .iter()
                .filter(|&&v| v != u32::MAX)
                .map(|&v| u64::from(v))
                .sum();
            // Counts the binning leaves out: valid pixels in masked bins or outside every bin.
            let mut left_out = 0u64;
            for y in 0..f.ny {
                for x in 0..f.nx {
                    let i = y * f.nx + x;
                    let (cx, cy) = (x / n, y / n);
                    if valid(i) && (cx >= bx || cy >= by || out[cy * bx + cx] == u32::MAX) {
                        left_out += u64::from(f.pixels[i]);
                    }
                }
            }
            assert_eq!(
                binned_total + left_out,
                source_total,
                "{pixel_type:?} n={n}"
            );
            // Masked bins are exactly the bins with a mask bit (the simulator puts every invalid
            // pixel in the mask).
            for (v, m) in out.iter().zip(&bmask) {
                assert_eq!(*v == u32::MAX, *m != 0);
            }
            assert!(
                binned_total > source_total * 9 / 10,
                "most counts are in valid bins"
            );
        }
    }
}

/// Summed frames keep every count of every valid pixel, and invalid pixels stay invalid.
#[test]
fn summing_keeps_every_valid_count() {
    // No dead pixels: the simulator draws them anew for every seed, and a static mask is the
    // same for every frame.
    let frames: Vec<Frame> = (0..5)
        .map(|s| frame(PixelType::U16, 0.5, 10 + s, 0.0))
        .collect();
    let mut summer = Summer::new(frames[0].pixels.len(), Some(65534));
    for f in &frames {
        let src: Vec<u16> = f.pixels.iter().map(|&v| v as u16).collect();
        summer.add(&src);
    }
    let mut out = vec![0u32; frames[0].pixels.len()];
    summer.finish_into(&mut out);
    let total = |f: &Frame| -> u64 {
        f.pixels
            .iter()
            .zip(&f.mask)
            .filter(|&(&v, &m)| m == 0 && v != 65535)
            .map(|(&v, _)| u64::from(v))
            .sum()
    };
    let want: u64 = frames.iter().map(total).sum();
    let got: u64 = out
        .iter()
        .filter(|&&v| v != u32::MAX)
        .map(|&v| u64::from(v))
        .sum();
    assert_eq!(got, want);
    for (i, &v) in out.iter().enumerate() {
        assert_eq!(v == u32::MAX, frames[0].mask[i] != 0, "pixel {i}");
    }
}
