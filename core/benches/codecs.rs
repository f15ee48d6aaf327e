//! Criterion benchmarks of the codecs on simulated EIGER2 frames, one thread.
//!
//! `cargo bench -p hdrmx-core` gives absolute figures; `cargo xtask bench codecs` gives the
//! ratios against the reference bitshuffle measured in the same run.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hdrmx_core::codec::bitshuffle::default_block_size;
use hdrmx_core::codec::transpose::Kernel;
use hdrmx_core::codec::{Bitshuffle, Codec, Compression, Lz4, Zstd};
use hdrmx_core::sim::{simulate, Detector, FrameSpec, PixelType};

fn frame() -> Vec<u8> {
    simulate(&FrameSpec::new(
        Detector::EIGER2_4M,
        PixelType::U32,
        0.05,
        300,
        1,
    ))
    .to_bytes()
}

/// One default-size block, in cache: the kernels alone.
fn kernels(c: &mut Criterion) {
    let data = frame();
    let block = default_block_size(4) * 4;
    // A block that straddles a module gap, like most blocks of a real frame.
    let src = &data[1000 * 4..1000 * 4 + block];
    let mut planes = vec![0u8; block];
    let mut back = vec![0u8; block];
    let mut group = c.benchmark_group("kernel_u32_8KiB");
    group.throughput(Throughput::Bytes(block as u64));
    for kernel in Kernel::ALL.into_iter().filter(|k| k.is_available()) {
        group.bench_function(BenchmarkId::new("transpose", kernel.name()), |b| {
            b.iter(|| kernel.transpose(src, &mut planes, 4))
        });
        group.bench_function(BenchmarkId::new("untranspose", kernel.name()), |b| {
            b.iter(|| kernel.untranspose(&planes, &mut back, 4))
        });
    }
    group.finish();
}

/// Whole 4M uint32 frames through every codec.
fn codecs(c: &mut Criterion) {
    let data = frame();
    let codecs = [
        (
            "bslz4",
            Codec::Bitshuffle(Bitshuffle::new(4, Compression::Lz4).unwrap()),
        ),
        (
            "bszstd",
            Codec::Bitshuffle(Bitshuffle::new(4, Compression::Zstd { level: 3 }).unwrap()),
        ),
        ("lz4", Codec::Lz4(Lz4::default())),
        ("zstd", Codec::Zstd(Zstd::default())),
    ];
    let mut group = c.benchmark_group("frame_4m_u32");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    for (name, codec) in codecs {
        let mut chunk = vec![0u8; codec.max_encoded_len(data.len())];
        let len = codec.encode_into(&data, &mut chunk).unwrap();
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut dst = vec![0u8; chunk.len()];
            b.iter(|| codec.encode_into(&data, &mut dst).unwrap())
        });
        let mut out = vec![0u8; data.len()];
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| codec.decode(&chunk[..len], &mut out).unwrap())
        });
    }
    group.finish();
}

/// LZ4 alone on the bit planes of one block, to see how decode time splits.
fn lz4_share(c: &mut Criterion) {
    let data = frame();
    let block = default_block_size(4) * 4;
    let mut planes = vec![0u8; block];
    Kernel::best().transpose(&data[1000 * 4..1000 * 4 + block], &mut planes, 4);
    let compressed = lz4_flex::block::compress(&planes);
    let mut out = vec![0u8; block];
    let mut group = c.benchmark_group("lz4_block_8KiB");
    group.throughput(Throughput::Bytes(block as u64));
    group.bench_function("decompress", |b| {
        b.iter(|| lz4_flex::block::decompress_into(&compressed, &mut out).unwrap())
    });
    group.finish();
}

/// One chunk's blocks on rayon's pool (all cores) against one thread.
fn parallel(c: &mut Criterion) {
    let data = frame();
    let codec = Bitshuffle::new(4, Compression::Lz4).unwrap();
    let chunk = Codec::Bitshuffle(codec).encode(&data).unwrap();
    let mut out = vec![0u8; data.len()];
    let mut group = c.benchmark_group("frame_4m_u32_bslz4");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    group.bench_function("decode", |b| {
        b.iter(|| codec.decode(&chunk, &mut out).unwrap())
    });
    group.bench_function("decode_parallel", |b| {
        b.iter(|| codec.decode_parallel(&chunk, &mut out).unwrap())
    });
    group.finish();
}

criterion_group!(benches, kernels, codecs, lz4_share, parallel);
criterion_main!(benches);
