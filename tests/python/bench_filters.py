#!/usr/bin/env python3
"""Measuring half of `cargo xtask bench filters`: our HDF5 filter plugins against
hdf5plugin, through h5py, on the same frames, same files, one thread.

Usage: bench_filters.py --plugin-dir DIR --frames FRAMES_DIR --out results.json

DIR holds libhdrmx_h5bshuf.so (+ h5lz4, h5zstd); they are copied into a private directory
that becomes HDF5_PLUGIN_PATH for "ours". FRAMES_DIR holds <name>.raw (little-endian
pixels) + <name>.json {"name", "dtype", "shape": [ny, nx]} (from `hdrmx bench frames`).

For each frame, the dataset is N copies of it, chunks of one frame, bitshuffle+LZ4
(filter 32008, default block). N is chosen so the data are about --target-mb of
UNCOMPRESSED pixels (default 400 MB: 6 frames of 16M uint32, 45 of 4M uint16; at least
--min-frames). The file is written ONCE by the reference (hdf5plugin), then:

  read   every frame with dset.read_direct(out, np.s_[i]) into one preallocated array;
         one warm-up pass (puts the file in the page cache and checks every frame bit
         for bit), then --passes timed passes; the best counts.
  write  N frames with `dset[i] = frame` into a new file (create -> close timed), one
         warm-up pass, then --passes timed passes, the best counts; the last file is
         read back (frame 0 and N-1) in the same process and checked, and its size
         reported.

Every measurement runs in its own process (two implementations of filter 32008 cannot
share one): "reference" imports hdf5plugin with HDF5_PLUGIN_PATH unset, "ours" sets
HDF5_PLUGIN_PATH and never imports hdf5plugin. All workers: OMP_NUM_THREADS=1,
HDF5_USE_FILE_LOCKING=FALSE, chunk cache off (rdcc_nbytes=0), so every read decodes.
MB/s counts 1e6 bytes of uncompressed pixels.

Output: {"results": [{"frame", "op": "read"|"write", "ours_MBps", "reference_MBps",
"ratio", ...}], ...} and a table. With --reference-only (or when asked to, because the
plugins are not built yet) only the reference half runs and ours_MBps is null.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PLUGINS = ["libhdrmx_h5bshuf.so", "libhdrmx_h5lz4.so", "libhdrmx_h5zstd.so"]
BSHUF = 32008


# ---------------------------------------------------------------- worker side

def load_frame(meta_path):
    meta = json.loads(Path(meta_path).read_text())
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    shape = tuple(int(s) for s in meta["shape"])
    raw = Path(meta_path).with_suffix(".raw")
    arr = np.fromfile(raw, dtype=dtype)
    if arr.size != int(np.prod(shape)):
        raise SystemExit(f"{raw}: {arr.size} elements, shape {shape} wants {int(np.prod(shape))}")
    return meta.get("name", Path(meta_path).stem), arr.reshape(shape).astype(dtype.newbyteorder("="))


def worker_setup(mode):
    if mode == "reference":
        if os.environ.get("HDF5_PLUGIN_PATH"):
            raise SystemExit("reference worker: HDF5_PLUGIN_PATH must be unset")
        import hdf5plugin  # noqa: F401
    elif "hdf5plugin" in sys.modules or not os.environ.get("HDF5_PLUGIN_PATH"):
        raise SystemExit("ours worker: needs HDF5_PLUGIN_PATH and no hdf5plugin")
    import h5py

    return h5py


def filter_kwargs(mode):
    if mode == "reference":
        import hdf5plugin

        return dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
    return {"compression": BSHUF, "compression_opts": (0, 2)}


def filter_libs():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ("libhdrmx_h5" in parts[5] or "/hdf5plugin/" in parts[5]):
                libs.add(Path(parts[5]).name)
    return sorted(libs)


def threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def worker_make(h5py, path, frame, n):
    with h5py.File(path, "w") as f:
        d = f.create_dataset("data", shape=(n, *frame.shape), dtype=frame.dtype,
                             chunks=(1, *frame.shape), **filter_kwargs("reference"))
        for i in range(n):
            d[i] = frame
        return {"stored_bytes": int(d.id.get_storage_size())}


def worker_read(h5py, path, frame, passes):
    with h5py.File(path, "r", rdcc_nbytes=0) as f:
        d = f["data"]
        n = d.shape[0]
        out = np.empty(d.shape[1:], d.dtype)
        for i in range(n):  # warm-up: page cache, lazy plugin load; and check every frame
            d.read_direct(out, np.s_[i])
            if not np.array_equal(out, frame):
                raise SystemExit(f"read: frame {i} differs from the source frame")
        times = []
        for _ in range(passes):
            t0 = time.perf_counter()
            for i in range(n):
                d.read_direct(out, np.s_[i])
            times.append(time.perf_counter() - t0)
        if not np.array_equal(out, frame):
            raise SystemExit("read: last timed frame differs from the source frame")
    return {"seconds": times, "frames": n}


def worker_write(h5py, tmpdir, frame, n, passes, mode):
    times, stored = [], None
    kw = filter_kwargs(mode)
    last = None
    for p in range(1 + passes):  # pass 0 is the warm-up
        path = Path(tmpdir) / f"write-{mode}-{p}.h5"
        t0 = time.perf_counter()
        with h5py.File(path, "w", rdcc_nbytes=0) as f:
            d = f.create_dataset("data", shape=(n, *frame.shape), dtype=frame.dtype,
                                 chunks=(1, *frame.shape), **kw)
            for i in range(n):
                d[i] = frame
        t1 = time.perf_counter()
        if p:
            times.append(t1 - t0)
        if last is not None:
            last.unlink()
        last = path
    with h5py.File(last, "r", rdcc_nbytes=0) as f:
        d = f["data"]
        stored = int(d.id.get_storage_size())
        skipped = sum(1 for i in range(d.id.get_num_chunks())
                      if d.id.get_chunk_info(i).filter_mask != 0)
        if skipped:
            raise SystemExit(f"write: {skipped} chunks stored with the filter skipped")
        for i in (0, n - 1):
            if not np.array_equal(d[i], frame):
                raise SystemExit(f"write: frame {i} read back differs")
        cd = list(d.id.get_create_plist().get_filter_by_id(BSHUF)[1])
    last.unlink()
    return {"seconds": times, "frames": n, "stored_bytes": stored, "cd_values": cd}


def worker_main(argv):
    ap = argparse.ArgumentParser(prog="bench_filters.py --worker")
    ap.add_argument("--worker", choices=["make", "read", "write"], required=True)
    ap.add_argument("--mode", choices=["ours", "reference"], required=True)
    ap.add_argument("--frame-json", required=True)
    ap.add_argument("--file")
    ap.add_argument("--tmpdir")
    ap.add_argument("--n", type=int)
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args(argv)
    h5py = worker_setup(a.mode)
    _, frame = load_frame(a.frame_json)
    if a.worker == "make":
        res = worker_make(h5py, a.file, frame, a.n)
    elif a.worker == "read":
        res = worker_read(h5py, a.file, frame, a.passes)
    else:
        res = worker_write(h5py, a.tmpdir, frame, a.n, a.passes, a.mode)
    res["libs"] = filter_libs()
    res["threads"] = threads()
    res["hdf5"] = h5py.version.hdf5_version
    print(json.dumps(res))


# ---------------------------------------------------------------- driver side

def run_worker(mode, plugin_path, args):
    env = dict(os.environ)
    env.pop("HDF5_PLUGIN_PATH", None)
    env.pop("HDF5_PLUGIN_PRELOAD", None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", HDF5_USE_FILE_LOCKING="FALSE")
    if mode == "ours":
        env["HDF5_PLUGIN_PATH"] = str(plugin_path)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", args[0], "--mode", mode,
           *map(str, args[1:])]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}"
        raise SystemExit(f"{mode} {args[0]} worker failed ({how}):\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    want = "libhdrmx_h5bshuf.so" if mode == "ours" else "libh5bshuf.so"
    other = "libh5bshuf.so" if mode == "ours" else "libhdrmx_h5bshuf.so"
    if want not in res["libs"] or other in res["libs"]:
        raise SystemExit(f"{mode} {args[0]} worker: wrong filter library loaded: {res['libs']}")
    if res["threads"] and res["threads"] > 1:
        print(f"warning: {mode} {args[0]} worker ended with {res['threads']} threads")
    return res


def mbps(nbytes, res):
    return round(nbytes / 1e6 / min(res["seconds"]), 1)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin-dir", type=Path, required=True, help="directory with our three plugins")
    ap.add_argument("--frames", type=Path, required=True, help="directory of <name>.raw + <name>.json")
    ap.add_argument("--out", type=Path, required=True, help="results JSON to write")
    ap.add_argument("--target-mb", type=float, default=400.0,
                    help="uncompressed MB per dataset (N = target / frame size) [400]")
    ap.add_argument("--min-frames", type=int, default=4)
    ap.add_argument("--passes", type=int, default=3, help="timed passes after the warm-up [3]")
    ap.add_argument("--tmp", type=Path, help="scratch directory (default: a new one in $TMPDIR)")
    ap.add_argument("--reference-only", action="store_true",
                    help="measure hdf5plugin only (e.g. before the plugins are built)")
    args = ap.parse_args()

    metas = sorted(args.frames.glob("*.json"))
    if not metas:
        raise SystemExit(f"no frames (*.json) in {args.frames}")
    missing = [p for p in PLUGINS if not (args.plugin_dir / p).is_file()]
    if missing and not args.reference_only:
        raise SystemExit(f"plugins missing in {args.plugin_dir}: {', '.join(missing)} "
                         f"(build them, or pass --reference-only)")

    scratch = Path(tempfile.mkdtemp(prefix="bench-filters-", dir=args.tmp))
    try:
        plugdir = scratch / "plugins"
        plugdir.mkdir()
        if not args.reference_only:
            for p in PLUGINS:
                shutil.copy2(args.plugin_dir / p, plugdir / p)
        modes = ["reference"] if args.reference_only else ["reference", "ours"]
        results = []
        for meta in metas:
            name, frame = load_frame(meta)
            n = max(args.min_frames, round(args.target_mb * 1e6 / frame.nbytes))
            total = n * frame.nbytes
            src = scratch / f"{name}.h5"
            made = run_worker("reference", plugdir, ["make", "--frame-json", meta, "--file", src, "--n", n])
            print(f"{name}: {frame.dtype.name}{list(frame.shape)}, {n} frames = {total / 1e6:.0f} MB, "
                  f"bslz4 file {made['stored_bytes'] / 1e6:.0f} MB "
                  f"(ratio {total / made['stored_bytes']:.2f})", flush=True)
            for op in ("read", "write"):
                row = {"frame": name, "op": op, "dtype": frame.dtype.name, "shape": list(frame.shape),
                       "frames_per_file": n, "uncompressed_MB": round(total / 1e6, 1)}
                for mode in modes:
                    if op == "read":
                        r = run_worker(mode, plugdir, ["read", "--frame-json", meta, "--file", src,
                                                       "--passes", args.passes])
                    else:
                        r = run_worker(mode, plugdir, ["write", "--frame-json", meta, "--tmpdir", scratch,
                                                       "--n", n, "--passes", args.passes])
                        row[f"{mode}_stored_bytes"] = r["stored_bytes"]
                        row[f"{mode}_cd_values"] = r["cd_values"]
                    key = "ours" if mode == "ours" else "reference"
                    row[f"{key}_MBps"] = mbps(total, r)
                    row[f"{key}_seconds"] = [round(s, 4) for s in r["seconds"]]
                    print(f"  {op:5s} {mode:9s} {row[f'{key}_MBps']:8.0f} MB/s  "
                          f"(passes {', '.join(f'{s:.3f}' for s in r['seconds'])} s)", flush=True)
                    row["hdf5"] = r["hdf5"]
                row.setdefault("ours_MBps", None)
                row["ratio"] = (round(row["ours_MBps"] / row["reference_MBps"], 2)
                                if row["ours_MBps"] else None)
                results.append(row)
            src.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(f"{'frame':24s} {'op':5s} {'N':>4s} {'reference MB/s':>15s} {'ours MB/s':>10s} {'ratio':>6s}")
    for r in results:
        ours = f"{r['ours_MBps']:.0f}" if r["ours_MBps"] else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        print(f"{r['frame']:24s} {r['op']:5s} {r['frames_per_file']:4d} {r['reference_MBps']:15.0f} "
              f"{ours:>10s} {ratio:>6s}")
    import importlib.metadata as md

    out = {
        "reference": f"hdf5plugin {md.version('hdf5plugin')} (Bitshuffle cname=lz4, default block)",
        "h5py": md.version("h5py"),
        "threads": "1 (OMP_NUM_THREADS=1; HDF5 filters run on the calling thread)",
        "passes": args.passes,
        "note": "MB/s = 1e6 bytes of uncompressed pixels / best pass; chunk cache off",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
