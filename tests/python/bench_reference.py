#!/usr/bin/env python3
"""Reference half of `cargo xtask bench codecs`: time the bitshuffle package on our frames.

Usage: bench_reference.py --frames DIR --out results.json

DIR holds frames written by the Rust bench: <name>.raw (little-endian pixels) and
<name>.json {"name", "dtype": "uint16"|"uint32", "shape": [ny, nx], optional "zstd_level"}.

For each frame and codec (bslz4, bszstd) we time, on ONE thread, bitshuffle.compress_lz4 /
compress_zstd (default block size) and decompress_lz4 / decompress_zstd. Each figure is
the median of at least 15 runs (more for fast frames, up to 0.5 s; never past ~2 s).
MB/s counts 1e6 bytes of UNCOMPRESSED data. compressed_bytes is the block stream plus
the 12-byte header the HDF5 filter 32008 adds (u64 BE size + u32 BE block bytes), i.e.
the size of the HDF5 chunk.
"""
import os

# The bitshuffle wheel is an OpenMP build (links libgomp) that parallelises over blocks;
# the reference is measured single-threaded. Must be set before bitshuffle is imported.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import bitshuffle  # noqa: E402
import numpy as np  # noqa: E402

HEADER_BYTES = 12
MIN_RUNS, MAX_RUNS = 15, 200
MIN_SECONDS, CAP_SECONDS = 0.5, 2.0


def median_seconds(fn):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        elapsed = t1 - start
        if elapsed >= CAP_SECONDS or len(times) >= MAX_RUNS:
            break
        if len(times) >= MIN_RUNS and elapsed >= MIN_SECONDS:
            break
    return statistics.median(times)


def thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def load_frame(meta_path):
    meta = json.loads(meta_path.read_text())
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    shape = tuple(int(s) for s in meta["shape"])
    raw = meta_path.with_suffix(".raw")
    arr = np.fromfile(raw, dtype=dtype)
    if arr.size != int(np.prod(shape)):
        raise SystemExit(f"{raw}: {arr.size} elements, shape {shape} wants {int(np.prod(shape))}")
    return meta.get("name", meta_path.stem), arr.reshape(shape), int(meta.get("zstd_level", 3))


def bench(arr, codec, level):
    if codec == "bslz4":
        enc = lambda: bitshuffle.compress_lz4(arr, 0)  # noqa: E731
        buf = enc()
        dec = lambda: bitshuffle.decompress_lz4(buf, arr.shape, arr.dtype, 0)  # noqa: E731
    else:
        enc = lambda: bitshuffle.compress_zstd(arr, 0, level)  # noqa: E731
        buf = enc()
        dec = lambda: bitshuffle.decompress_zstd(buf, arr.shape, arr.dtype, 0)  # noqa: E731
    if not np.array_equal(dec(), arr):
        raise SystemExit(f"reference {codec} round trip failed")
    mb = arr.nbytes / 1e6
    return {
        "encode_MBps": round(mb / median_seconds(enc), 1),
        "decode_MBps": round(mb / median_seconds(dec), 1),
        "compressed_bytes": int(buf.nbytes) + HEADER_BYTES,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=Path, required=True, help="directory of <name>.raw + <name>.json")
    ap.add_argument("--out", type=Path, required=True, help="results JSON to write")
    args = ap.parse_args()

    metas = sorted(args.frames.glob("*.json"))
    if not metas:
        raise SystemExit(f"no frames (*.json) in {args.frames}")
    results = []
    for meta_path in metas:
        name, arr, level = load_frame(meta_path)
        for codec in ("bslz4", "bszstd"):
            r = {"frame": name, "codec": codec, **bench(arr, codec, level)}
            results.append(r)
            lvl = f" (level {level})" if codec == "bszstd" else ""
            print(f"reference {name} {arr.dtype.name}{list(arr.shape)} {codec}{lvl}: "
                  f"encode {r['encode_MBps']:.0f} MB/s, decode {r['decode_MBps']:.0f} MB/s, "
                  f"{r['compressed_bytes']} bytes (ratio {arr.nbytes / r['compressed_bytes']:.2f})")

    threads = thread_count()
    if threads is not None and threads > 1:
        print(f"warning: {threads} threads in this process; the reference may not be single-threaded")
    out = {
        "reference": f"bitshuffle {bitshuffle.__version__}",
        "avx2": bool(bitshuffle.using_AVX2()),
        "omp_num_threads": int(os.environ["OMP_NUM_THREADS"]),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
