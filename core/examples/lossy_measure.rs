//! Sizes and single-thread speeds of the lossy codec (filter 311) at q = 0, 0.5, 1 and 2 against
//! bitshuffle/LZ4 (bslz4) on the same simulated EIGER2 4M frame, measured in the same run, and
//! the spot-intensity bias at each q.
//!
//! `cargo run --release -p hdrmx-core --example lossy_measure [-- u16]`
//!
//! Speeds are MB/s of uncompressed frame, the best of 7 runs. The bias is the mean over the
//! simulator's spots of (I_decoded − I_true)/σ_I, I summed in the 5x5 box at the spot,
//! σ_I = √I_true, over boxes clear of masked pixels.
use hdrmx_core::codec::lossy::{Inner, Lossy};
use hdrmx_core::codec::{Bitshuffle, Codec, Compression};
use hdrmx_core::sim::{simulate, Detector, Frame, FrameSpec, PixelType};
use std::time::Instant;

fn best<R>(runs: usize, mut f: impl FnMut() -> R) -> (f64, R) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("at least one run"))
}

fn values(f: &Frame, bytes: &[u8]) -> Vec<u32> {
    let e = f.pixel_type.size();
    bytes
        .chunks_exact(e)
        .map(|b| {
            let mut w = [0u8; 4];
            w[..e].copy_from_slice(b);
            u32::from_le_bytes(w)
        })
        .collect()
}

fn spot_bias(f: &Frame, decoded: &[u32]) -> f64 {
    let mut z = Vec::new();
    for s in &f.spots {
        let (cx, cy) = (s.x as usize, s.y as usize);
        if cx < 2 || cy < 2 || cx + 2 >= f.nx || cy + 2 >= f.ny {
            continue;
        }
        let idx: Vec<usize> = (cy - 2..=cy + 2)
            .flat_map(|y| (cx - 2..=cx + 2).map(move |x| y * f.nx + x))
            .collect();
        if idx.iter().any(|&i| f.mask[i] != 0) {
            continue;
        }
        let truth: f64 = idx.iter().map(|&i| f64::from(f.pixels[i])).sum();
        let got: f64 = idx.iter().map(|&i| f64::from(decoded[i])).sum();
        if truth > 0.0 {
            z.push((got - truth) / truth.sqrt());
        }
    }
    z.iter().sum::<f64>() / z.len() as f64
}

fn main() {
    let pixel_type = match std::env::args().nth(1).as_deref() {
        Some("u16") => PixelType::U16,
        _ => PixelType::U32,
    };
    let mut spec = FrameSpec::new(Detector::EIGER2_4M, pixel_type, 1.0, 2000, 42);
    spec.background_edge = 0.25;
    let f = simulate(&spec);
    let src = f.to_bytes();
    let e = pixel_type.size();
    let mb = src.len() as f64 / 1e6;
    println!(
        "EIGER2 4M {} frame, {:.1} MB, background 1 -> 0.25 photons, {} spots, one thread",
        pixel_type.name(),
        mb,
        f.spots.len()
    );
    println!(
        "{:<22} {:>10} {:>8} {:>9} {:>11} {:>11} {:>10}",
        "codec", "bytes", "vs raw", "vs bslz4", "enc MB/s", "dec MB/s", "spot bias"
    );
    let mut reference = 0usize;
    let mut rows: Vec<(String, Codec)> = vec![(
        "bslz4".into(),
        Codec::Bitshuffle(Bitshuffle::new(e, Compression::Lz4).unwrap()),
    )];
    for q in [0.0, 0.5, 1.0, 2.0] {
        rows.push((
            format!("lossy q={q} lz4"),
            Codec::Lossy(Lossy::new(q, Inner::Lz4, e).unwrap()),
        ));
    }
    rows.push((
        "lossy q=1 zstd3".into(),
        Codec::Lossy(Lossy::new(1.0, Inner::Zstd(3), e).unwrap()),
    ));
    for (name, codec) in rows {
        let mut dst = vec![0u8; codec.max_encoded_len(src.len())];
        let (t_enc, len) = best(7, || codec.encode_into(&src, &mut dst).unwrap());
        let chunk = &dst[..len];
        let mut out = vec![0u8; src.len()];
        let (t_dec, ()) = best(7, || codec.decode(chunk, &mut out).unwrap());
        if reference == 0 {
            reference = len;
        }
        let bias = match codec {
            Codec::Lossy(_) => format!("{:+.4}", spot_bias(&f, &values(&f, &out))),
            _ => "-".into(),
        };
        println!(
            "{:<22} {:>10} {:>7.2}x {:>8.3}x {:>11.0} {:>11.0} {:>10}",
            name,
            len,
            src.len() as f64 / len as f64,
            reference as f64 / len as f64,
            mb / t_enc,
            mb / t_dec,
            bias
        );
    }
}
