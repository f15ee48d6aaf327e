//! Writer throughput for pre-compressed frames (the detector-stream path): one 16M uint32 frame
//! from the simulator, compressed once with bitshuffle/LZ4, written N times with direct chunk
//! writes into data files of 1000 frames under a VDS master, one thread.
//!
//! `cargo run --release -p durin-rs --example bench_write -- [frames] [dir] [chunk-out]`: the
//! last line printed is JSON; `chunk-out` receives the chunk, for the h5py reference
//! (`tests/python/bench_write.py`) to write the same bytes.
use durin::{Layout, Metadata, Writer, WriterOptions};
use hdrmx_core::codec::{Bitshuffle, Codec, Compression};
use hdrmx_core::sim::{self, Detector, FrameSpec, PixelType};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let frames: usize = args
        .next()
        .map_or(200, |a| a.parse().expect("frames: a number"));
    let dir = args.next().map_or_else(
        || std::env::temp_dir().join("durin-bench-write"),
        Into::into,
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the output directory");
    let det = Detector::EIGER2_16M;
    let frame = sim::simulate(&FrameSpec::new(det, PixelType::U32, 0.05, 300, 1));
    let raw = frame.to_bytes();
    let codec = Codec::Bitshuffle(Bitshuffle::new(4, Compression::Lz4).expect("bslz4"));
    let chunk = codec.encode(&raw).expect("encoding");
    if let Some(out) = args.next() {
        std::fs::write(&out, &chunk).expect("writing the chunk");
    }
    let meta = Metadata {
        nx: det.nx(),
        ny: det.ny(),
        elem_size: 4,
        x_pixel_size: 75e-6,
        y_pixel_size: 75e-6,
        distance: 0.2,
        beam_center_x: det.nx() as f64 / 2.0,
        beam_center_y: det.ny() as f64 / 2.0,
        wavelength: 1.0,
        omega_start: 0.0,
        omega_increment: 0.1,
        count_time: 0.0075,
        frame_time: 0.0075,
        sensor_material: "Si".into(),
        sensor_thickness: 450e-6,
        saturation_value: 1 << 20,
        underload_value: -1,
        bit_depth_readout: 32,
        description: "bench".into(),
        start_time: "2026-01-01T00:00:00Z".into(),
        pixel_mask: frame.mask.clone(),
    };
    let opts = WriterOptions {
        frames_per_file: 1000,
        layout: Layout::Vds,
        codec,
    };
    let start = Instant::now();
    let mut w = Writer::create(&dir, "bench", meta, opts).expect("writer");
    for _ in 0..frames {
        w.write_chunk(&chunk).expect("writing a chunk");
    }
    let frames_secs = start.elapsed().as_secs_f64();
    let master = w.finish().expect("finishing");
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "frames {frames_secs:.3} s, master (metadata, deflated 16M mask) {:.3} s",
        secs - frames_secs
    );
    let raw_gb = (raw.len() * frames) as f64 / 1e9;
    println!(
        "{frames} frames of 16M uint32 ({:.1} MB raw, {:.2} MB bslz4) in {secs:.3} s: {:.0} frames/s, {:.2} GB/s uncompressed-equivalent, {:.2} GB/s written; master {}",
        raw.len() as f64 / 1e6,
        chunk.len() as f64 / 1e6,
        frames as f64 / secs,
        raw_gb / secs,
        (chunk.len() * frames) as f64 / 1e9 / secs,
        master.display()
    );
    println!(
        "{{\"frames\": {frames}, \"seconds\": {secs}, \"frames_seconds\": {frames_secs}, \"raw_bytes\": {}, \"chunk_bytes\": {}}}",
        raw.len(),
        chunk.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
