#!/usr/bin/env python3
"""Data for `cargo xtask bench xds`: EIGER2 4M and 16M uint32 datasets (bitshuffle + LZ4, one
frame per chunk), each with a DECTRIS-style links master and a VDS master over the same data
files; then a check that the XDS plugin, through the C host, gives for the first and the last
frame of each master exactly the XDS convention of what h5py reads.

Usage: bench_xds.py --frames FRAMES_DIR --work DIR --host HOST --lib LIB --out datasets.json
                    [--n 20] [--per-file 10]

FRAMES_DIR holds 16m_uint32_bg0.05.raw + .json from `hdrmx bench frames` (4362 x 4148 uint32,
module gaps at 0xFFFFFFFF). The 4M frame is its top-left 2162 x 2068 corner, which is the EIGER2
4M layout (2 x 4 modules). Frame i is the frame's non-gap pixels shifted by (37 i, 101 i) with
wrap-around, gaps in place: the same statistics, different chunks. The pixel mask (uint32, one
deflated chunk) has bit 0 on the gaps and bit 1 on 1000 scattered pixels. DIR gets, per size S:

  S_data_000001.h5, ...   /entry/data/data, --per-file frames each
  S_master.h5             /entry/data/data_000001, ... external links; mask in detectorSpecific
  S_vds.h5                /entry/data/data, a VDS over the data files; mask in the detector

Output: {"masters": [{"size", "kind", "path", "frames", "shape", "stored_bytes"}...]}.
"""
import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

FRAME = "16m_uint32_bg0.05"
SIZES = {"16M": (4362, 4148), "4M": (2162, 2068)}
DETECTOR = "/entry/instrument/detector"
I32_MAX = 2**31 - 1


def load_frame(frames_dir):
    meta = json.loads((frames_dir / f"{FRAME}.json").read_text())
    shape = tuple(int(s) for s in meta["shape"])
    arr = np.fromfile(frames_dir / f"{FRAME}.raw", dtype="<u4")
    if arr.size != shape[0] * shape[1]:
        raise SystemExit(f"{FRAME}.raw: {arr.size} pixels, shape {shape}")
    return arr.reshape(shape).astype(np.uint32)


def make_mask(gaps):
    mask = gaps.astype(np.uint32)
    rng = np.random.default_rng(7)
    mask[rng.integers(0, gaps.shape[0], 1000), rng.integers(0, gaps.shape[1], 1000)] |= 2
    return mask


def write_detector(f, mask, path):
    f.require_group("/entry").attrs["NX_class"] = "NXentry"
    f["/entry/definition"] = "NXmx"
    det = f.require_group(DETECTOR)
    det.attrs["NX_class"] = "NXdetector"
    det["bit_depth_readout"] = np.int32(32)
    for name in ("x_pixel_size", "y_pixel_size"):
        det[name] = np.float64(7.5e-05)
        det[name].attrs["units"] = "m"
    f.create_dataset(path, data=mask, chunks=mask.shape, compression="gzip", compression_opts=4)
    f.require_group("/entry/data").attrs["NX_class"] = "NXdata"


def write_size(work, size, base, n, per_file):
    import h5py
    import hdf5plugin

    gaps = base == np.iinfo(np.uint32).max
    content = np.where(gaps, 0, base).astype(np.uint32)
    mask = make_mask(gaps)
    ny, nx = base.shape
    files, stored = [], 0
    for k, first in enumerate(range(0, n, per_file), start=1):
        count = min(per_file, n - first)
        name = f"{size}_data_{k:06d}.h5"
        with h5py.File(work / name, "w") as f:
            d = f.create_dataset("/entry/data/data", shape=(count, ny, nx), dtype=np.uint32,
                                 chunks=(1, ny, nx), **hdf5plugin.Bitshuffle(cname="lz4"))
            for j in range(count):
                i = first + j
                d[j] = base if i == 0 else np.where(gaps, base, np.roll(content, (37 * i, 101 * i), (0, 1)))
            stored += d.id.get_storage_size()
        files.append((name, first, count))
    links = work / f"{size}_master.h5"
    with h5py.File(links, "w") as f:
        write_detector(f, mask, f"{DETECTOR}/detectorSpecific/pixel_mask")
        for k, (name, _, _) in enumerate(files, start=1):
            f[f"/entry/data/data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
    vds = work / f"{size}_vds.h5"
    with h5py.File(vds, "w") as f:
        write_detector(f, mask, f"{DETECTOR}/pixel_mask")
        layout = h5py.VirtualLayout(shape=(n, ny, nx), dtype=np.uint32)
        for name, first, count in files:
            layout[first:first + count] = h5py.VirtualSource(name, "/entry/data/data",
                                                             shape=(count, ny, nx))
        f["/entry/data"].create_virtual_dataset("data", layout, fillvalue=0)
    return [dict(size=size, kind=kind, path=str(p), frames=n, shape=[ny, nx], stored_bytes=stored)
            for kind, p in (("links", links), ("vds", vds))]


def xds(raw, mask):
    """The XDS convention (as in test_xds.py): gaps -1, other mask bits -2, saturated 2^31 - 1."""
    v = raw.astype(np.int64)
    out = np.where(v == np.iinfo(raw.dtype).max, I32_MAX, np.minimum(v, I32_MAX))
    out = np.where(mask != 0, -2, out)
    return np.where(mask & 1 != 0, -1, out).astype(np.int32)


def check(host, lib, m):
    """The plugin's first and last frame equal the convention of what h5py reads."""
    import h5py
    import hdf5plugin  # noqa: F401

    ny, nx = m["shape"]
    picks = [1, m["frames"]]
    with tempfile.TemporaryDirectory(prefix="bench-xds-") as tmp:
        out = Path(tmp) / "frames.bin"
        cmd = [host, lib, "open", m["path"], "header", "out", str(out), "data",
               ",".join(map(str, picks)), "close"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        # Every call's error flag is 0 ("open ERR ...", "frame N ERR"), and "data CALLS FAILED"
        # has none failed.
        flags = [w[2] if w[0] in ("frame", "data") else w[1]
                 for w in map(str.split, p.stdout.splitlines())]
        if p.returncode != 0 or len(flags) != 6 or any(f != "0" for f in flags):
            raise SystemExit(f"{' '.join(cmd)}:\n{p.stdout}{p.stderr[-3000:]}")
        got = np.fromfile(out, dtype="<i4").reshape(len(picks), ny, nx)
    with h5py.File(m["path"], "r") as f:
        g = f["/entry/data"]
        names = ["data"] if m["kind"] == "vds" else sorted(k for k in g if k.startswith("data_"))
        per = g[names[0]].shape[0]
        mask_path = f"{DETECTOR}/pixel_mask" if m["kind"] == "vds" else \
            f"{DETECTOR}/detectorSpecific/pixel_mask"
        mask = f[mask_path][()]
        for j, k in enumerate(picks):
            i = k - 1
            raw = g[names[0]][i] if m["kind"] == "vds" else g[names[i // per]][i % per]
            if not np.array_equal(got[j], xds(raw, mask)):
                raise SystemExit(f"{m['path']}: frame {k}: the plugin and h5py + the rules differ")
    print(f"{Path(m['path']).name}: frames {picks} from the plugin equal h5py's under the rules",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--host", required=True, help="hdrmx-xds-host")
    ap.add_argument("--lib", required=True, help="libhdrmx_xds.so")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=20, help="frames per dataset [20]")
    ap.add_argument("--per-file", type=int, default=10, help="frames per data file [10]")
    args = ap.parse_args()
    if args.n < 1 or args.per_file < 1:
        raise SystemExit("--n and --per-file must be at least 1")
    frame16 = load_frame(args.frames)
    args.work.mkdir(parents=True, exist_ok=True)
    masters = []
    for size, (ny, nx) in SIZES.items():
        t = time.perf_counter()
        made = write_size(args.work, size, frame16[:ny, :nx], args.n, args.per_file)
        print(f"{size}: {args.n} frames of {nx} x {ny} uint32, {made[0]['stored_bytes'] / 1e6:.0f} MB "
              f"stored, {time.perf_counter() - t:.1f} s", flush=True)
        masters += made
    for m in masters:
        check(args.host, args.lib, m)
    args.out.write_text(json.dumps({"masters": masters}, indent=1) + "\n")


if __name__ == "__main__":
    main()
