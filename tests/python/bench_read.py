#!/usr/bin/env python3
"""Reference half of `cargo xtask bench read`: writes an NXmx dataset of EIGER2 16M frames
(bitshuffle + LZ4, one frame per chunk) as two masters over the same data files, checks that
`hdrmx bench read` (neggia-rs) reads what h5py does, and times h5py + hdf5plugin opening the
masters and reading every frame.

Usage: bench_read.py --frames FRAMES_DIR --work DIR --hdrmx BIN --out reference.json
                     [--n 24] [--per-file 8] [--passes 3] [--opens 5]

FRAMES_DIR holds <name>.raw + <name>.json from `hdrmx bench frames`; --frame names the one
to use (default 16m_uint32_bg0.05: 4362 x 4148 uint32, module gaps at 0xFFFFFFFF). Frame i
of the dataset is that frame's pixels outside the gaps shifted by (37 i, 101 i) pixels (with
wrap-around), gaps kept in place: same statistics, different chunks. DIR gets:

  bench_000001.h5, ...      /entry/data/data: --per-file frames each, uint32, chunks of one
                            frame, hdf5plugin.Bitshuffle(cname='lz4'); attrs image_nr_low/high
  bench_vds_master.h5       NXmx: /entry/data/data a virtual dataset over the data files
                            (relative file names), pixel mask at
                            /entry/instrument/detector/pixel_mask
  bench_links_master.h5     DECTRIS FileWriter style: /entry/data/data_000001, ... external
                            links to the data files, pixel mask at
                            /entry/instrument/detector/detectorSpecific/pixel_mask

Both masters: /entry/definition "NXmx", detector bit_depth_readout 32, x/y_pixel_size
7.5e-05 (units "m"), and a uint32 pixel mask of 4362 x 4148 (bit 0 on the module gaps,
bit 1 on 1000 scattered "dead" pixels), stored chunked as ONE chunk of the whole mask,
deflate level 4 (h5py's gzip default) -- or contiguous with --mask-layout contiguous.

Check: `hdrmx bench read --dump-frame ...` writes frames 0, one in the second file and the
last through neggia-rs for each master; they must equal h5py's bit for bit.

Timing, each master in its own process (OMP_NUM_THREADS=1, HDF5_USE_FILE_LOCKING=FALSE,
hdf5plugin imported, HDF5_PLUGIN_PATH unset, chunk cache off on the master):
  open   h5py.File + the frame stack (the VDS, or every data_NNNNNN link's dataset, which
         opens the data files) + the whole pixel mask + bit depth and pixel sizes; one
         untimed open, then --opens timed ones, the best counts (ms). The file is closed
         outside the timing.
  read   every frame once, one thread, into one preallocated array:
         `dset.read_direct(out, np.s_[i])` on the VDS; on the links master the data_NNNNNN
         datasets are opened once and read in order. One warm-up pass (page cache; records
         each frame's pixel sum, which `hdrmx bench read` must reproduce), then --passes
         timed passes, the best counts (ms per frame). HDF5 serialises every call, so the
         reference has no threaded figure. (Frame chunks are 64 MB, larger than any default
         chunk cache, so every read decodes whatever the cache settings of the source files.)

Output: {"reference", "h5py", "hdf5", "frames", "per_file", "masters": {"vds": {...},
"links": {...}}} where each master has path, open_ms, open_seconds, read_ms_per_frame,
read_seconds and frame_sums.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAME = "16m_uint32_bg0.05"
MASTERS = {"vds": "bench_vds_master.h5", "links": "bench_links_master.h5"}
DETECTOR = "/entry/instrument/detector"
MASK_PATH = {"vds": f"{DETECTOR}/pixel_mask", "links": f"{DETECTOR}/detectorSpecific/pixel_mask"}


def load_frame(frames_dir, name):
    meta = json.loads((frames_dir / f"{name}.json").read_text())
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    shape = tuple(int(s) for s in meta["shape"])
    arr = np.fromfile(frames_dir / f"{name}.raw", dtype=dtype)
    if arr.size != int(np.prod(shape)):
        raise SystemExit(f"{name}.raw: {arr.size} elements, shape {shape} wants {int(np.prod(shape))}")
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def data_name(k):
    return f"bench_{k:06d}.h5"


# ---------------------------------------------------------------- writing

def stack_frame(base, gaps, content, i):
    """Frame i: the non-gap pixels shifted by (37 i, 101 i), the gaps where they are."""
    if i == 0:
        return base
    return np.where(gaps, base, np.roll(content, (37 * i, 101 * i), axis=(0, 1)))


def make_mask(gaps):
    mask = gaps.astype(np.uint32)  # bit 0: gap
    rng = np.random.default_rng(7)
    ys = rng.integers(0, gaps.shape[0], 1000)
    xs = rng.integers(0, gaps.shape[1], 1000)
    mask[ys, xs] |= 2  # bit 1: dead
    return mask


def write_detector(h5py, f, mask, mask_path, mask_layout):
    entry = f.require_group("/entry")
    entry.attrs["NX_class"] = "NXentry"
    entry["definition"] = "NXmx"
    f.require_group("/entry/instrument").attrs["NX_class"] = "NXinstrument"
    det = f.require_group(DETECTOR)
    det.attrs["NX_class"] = "NXdetector"
    det["bit_depth_readout"] = np.int32(32)
    for name in ("x_pixel_size", "y_pixel_size"):
        det[name] = np.float64(7.5e-05)
        det[name].attrs["units"] = "m"
    if mask_layout == "deflate":
        f.create_dataset(mask_path, data=mask, chunks=mask.shape, compression="gzip", compression_opts=4)
    else:
        f.create_dataset(mask_path, data=mask)


def write_files(work, frame, n, per_file, mask_layout):
    import h5py
    import hdf5plugin

    work.mkdir(parents=True, exist_ok=True)
    ny, nx = frame.shape
    gaps = frame == np.iinfo(frame.dtype).max
    content = np.where(gaps, 0, frame).astype(frame.dtype)
    mask = make_mask(gaps)
    files = []  # (name, first frame, frames)
    stored = 0
    t0 = time.perf_counter()
    for k, first in enumerate(range(0, n, per_file), start=1):
        count = min(per_file, n - first)
        name = data_name(k)
        with h5py.File(work / name, "w") as f:
            f.require_group("/entry").attrs["NX_class"] = "NXentry"
            g = f.require_group("/entry/data")
            g.attrs["NX_class"] = "NXdata"
            d = g.create_dataset("data", shape=(count, ny, nx), dtype=frame.dtype, chunks=(1, ny, nx),
                                 **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
            d.attrs["image_nr_low"] = np.int32(first + 1)
            d.attrs["image_nr_high"] = np.int32(first + count)
            for j in range(count):
                d[j] = stack_frame(frame, gaps, content, first + j)
            stored += d.id.get_storage_size()
        files.append((name, first, count))

    with h5py.File(work / MASTERS["vds"], "w") as f:
        write_detector(h5py, f, mask, MASK_PATH["vds"], mask_layout)
        layout = h5py.VirtualLayout(shape=(n, ny, nx), dtype=frame.dtype)
        for name, first, count in files:
            layout[first:first + count] = h5py.VirtualSource(name, "/entry/data/data", shape=(count, ny, nx))
        g = f.require_group("/entry/data")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "data"
        g.create_virtual_dataset("data", layout, fillvalue=0)

    with h5py.File(work / MASTERS["links"], "w") as f:
        write_detector(h5py, f, mask, MASK_PATH["links"], mask_layout)
        g = f.require_group("/entry/data")
        g.attrs["NX_class"] = "NXdata"
        for k, (name, _, _) in enumerate(files, start=1):
            g[f"data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")

    raw = n * frame.nbytes
    print(f"wrote {n} frames of {nx} x {ny} {frame.dtype.name} in {len(files)} data files under {work}: "
          f"{stored / 1e6:.0f} MB stored of {raw / 1e6:.0f} MB (ratio {raw / stored:.2f}), "
          f"pixel mask {mask_layout}, {time.perf_counter() - t0:.1f} s", flush=True)
    return files, stored


# ---------------------------------------------------------------- checking neggia-rs

def check_neggia(hdrmx, work, frame, n, per_file):
    import h5py
    import hdf5plugin  # noqa: F401

    picks = sorted({0, min(per_file, n - 1), n - 1})  # first, first of the second file, last
    ny, nx = frame.shape
    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        for kind, master in MASTERS.items():
            out = Path(tmp) / f"{kind}.raw"
            cmd = [str(hdrmx), "bench", "read", "--master", str(work / master), "--dump-out", str(out)]
            for i in picks:
                cmd += ["--dump-frame", str(i)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
            got = np.fromfile(out, dtype=frame.dtype.newbyteorder("<")).reshape(len(picks), ny, nx)
            with h5py.File(work / master, "r") as f:
                for j, i in enumerate(picks):
                    if kind == "vds":
                        want = f["/entry/data/data"][i]
                    else:
                        want = f[f"/entry/data/data_{i // per_file + 1:06d}"][i % per_file]
                    if not np.array_equal(got[j], want):
                        bad = int(np.count_nonzero(got[j] != want))
                        raise SystemExit(f"{master}: frame {i}: neggia-rs and h5py differ in {bad} pixels")
            print(f"{master}: frames {picks} read by neggia-rs equal h5py's", flush=True)
    return picks


# ---------------------------------------------------------------- timing (worker side)

def frame_stack(f, kind):
    if kind == "vds":
        d = f["/entry/data/data"]
        return [d]
    g = f["/entry/data"]
    return [g[name] for name in sorted(k for k in g.keys() if k.startswith("data_"))]


def worker_open(h5py, path, kind):
    t0 = time.perf_counter()
    f = h5py.File(path, "r", rdcc_nbytes=0)
    stack = frame_stack(f, kind)
    frames = sum(d.shape[0] for d in stack)
    mask = f[MASK_PATH[kind]][()]
    det = f[DETECTOR]
    facts = (int(det["bit_depth_readout"][()]), float(det["x_pixel_size"][()]), float(det["y_pixel_size"][()]))
    t1 = time.perf_counter()
    del stack, det
    f.close()
    return t1 - t0, frames, mask, facts


def worker_main(argv):
    ap = argparse.ArgumentParser(prog="bench_read.py --worker")
    ap.add_argument("--worker", required=True)
    ap.add_argument("--kind", choices=list(MASTERS), required=True)
    ap.add_argument("--master", required=True)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--opens", type=int, default=5)
    a = ap.parse_args(argv)
    if os.environ.get("HDF5_PLUGIN_PATH"):
        raise SystemExit("worker: HDF5_PLUGIN_PATH must be unset (the reference is hdf5plugin)")
    import h5py
    import hdf5plugin  # noqa: F401

    _, frames, mask, facts = worker_open(h5py, a.master, a.kind)  # untimed: page cache
    if mask.dtype != np.uint32 or facts[0] != 32:
        raise SystemExit(f"{a.master}: unexpected mask {mask.dtype} / bit depth {facts[0]}")
    open_seconds = [worker_open(h5py, a.master, a.kind)[0] for _ in range(a.opens)]

    with h5py.File(a.master, "r", rdcc_nbytes=0) as f:
        stack = frame_stack(f, a.kind)
        out = np.empty(stack[0].shape[1:], stack[0].dtype)
        sums = []
        for d in stack:  # warm-up
            for j in range(d.shape[0]):
                d.read_direct(out, np.s_[j])
                sums.append(int(out.sum(dtype=np.int64)))
        read_seconds = []
        for _ in range(a.passes):
            t0 = time.perf_counter()
            for d in stack:
                for j in range(d.shape[0]):
                    d.read_direct(out, np.s_[j])
            read_seconds.append(time.perf_counter() - t0)
        if int(out.sum(dtype=np.int64)) != sums[-1]:
            raise SystemExit("the last frame read differently in the timed passes")
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = None
    print(json.dumps({"frames": frames, "open_seconds": open_seconds, "read_seconds": read_seconds,
                      "frame_sums": sums, "threads": threads, "hdf5": h5py.version.hdf5_version}))


# ---------------------------------------------------------------- driver side

def run_worker(kind, master, passes, opens):
    env = dict(os.environ)
    env.pop("HDF5_PLUGIN_PATH", None)
    env.pop("HDF5_PLUGIN_PRELOAD", None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", HDF5_USE_FILE_LOCKING="FALSE")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "time", "--kind", kind,
           "--master", str(master), "--passes", str(passes), "--opens", str(opens)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}"
        raise SystemExit(f"{kind} timing worker failed ({how}):\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    if res["threads"] and res["threads"] > 1:
        print(f"warning: {kind} worker ended with {res['threads']} threads")
    return res


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=Path, required=True, help="directory of <name>.raw + <name>.json")
    ap.add_argument("--frame", default=FRAME, help=f"which frame [{FRAME}]")
    ap.add_argument("--work", type=Path, required=True, help="directory for the data files and masters")
    ap.add_argument("--hdrmx", type=Path, required=True, help="the hdrmx binary (checked against h5py)")
    ap.add_argument("--out", type=Path, required=True, help="results JSON to write")
    ap.add_argument("--n", type=int, default=24, help="frames in all [24]")
    ap.add_argument("--per-file", type=int, default=8, help="frames per data file [8]")
    ap.add_argument("--passes", type=int, default=3, help="timed read passes after the warm-up [3]")
    ap.add_argument("--opens", type=int, default=5, help="timed opens after an untimed one [5]")
    ap.add_argument("--mask-layout", choices=["deflate", "contiguous"], default="deflate")
    args = ap.parse_args()
    if args.n < 1 or args.per_file < 1:
        raise SystemExit("--n and --per-file must be at least 1")

    frame = load_frame(args.frames, args.frame)
    files, stored = write_files(args.work, frame, args.n, args.per_file, args.mask_layout)
    picks = check_neggia(args.hdrmx, args.work, frame, args.n, args.per_file)

    masters = {}
    for kind, name in MASTERS.items():
        r = run_worker(kind, args.work / name, args.passes, args.opens)
        if r["frames"] != args.n:
            raise SystemExit(f"{name}: h5py sees {r['frames']} frames, wrote {args.n}")
        row = {
            "path": str(args.work / name),
            "open_ms": round(min(r["open_seconds"]) * 1e3, 3),
            "open_seconds": [round(s, 6) for s in r["open_seconds"]],
            "read_ms_per_frame": round(min(r["read_seconds"]) / args.n * 1e3, 3),
            "read_seconds": [round(s, 4) for s in r["read_seconds"]],
            "frame_sums": r["frame_sums"],
        }
        masters[kind] = row
        print(f"h5py {kind:5s}: open {row['open_ms']:7.2f} ms (best of {args.opens}), "
              f"read {row['read_ms_per_frame']:6.2f} ms/frame (passes "
              f"{', '.join(f'{s:.3f}' for s in r['read_seconds'])} s)", flush=True)
        hdf5 = r["hdf5"]

    import importlib.metadata as md

    out = {
        "reference": f"h5py {md.version('h5py')} + hdf5plugin {md.version('hdf5plugin')} (HDF5 {hdf5})",
        "frame": args.frame,
        "frames": args.n,
        "per_file": args.per_file,
        "data_files": [name for name, _, _ in files],
        "stored_bytes": int(stored),
        "mask_layout": args.mask_layout,
        "checked_frames": picks,
        "passes": args.passes,
        "opens": args.opens,
        "masters": masters,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
