#!/usr/bin/env python3
"""`cargo xtask bench dials`: frames of a 4M uint32 NXmx (VDS) master through hdrmx_dials and
through h5py + hdf5plugin, in the same process and run, with ratios.

Usage: bench_dials.py --work DIR [--frames 20] [--per-file 10] [--passes 3]
                      [--photons 0.1 1] [--detector 4m|16m] [--out FILE]

DIR/<photons> gets an EIGER2 4M dataset per --photons value: 2162 x 2068 uint32 frames (4 x 2
modules of 512 x 1028, gaps of 38 and 12 pixels at 0xFFFFFFFF with pixel mask bit 0), a
Poisson background of that many photons per pixel and 300 spots, one frame per chunk,
hdf5plugin.Bitshuffle(cname="lz4"), in data files of --per-file frames; the master's
/entry/data/data is a VDS over them, with the NXmx geometry dxtbx needs. Frame i is frame 0's
pixels shifted by (37 i, 101 i), gaps kept.

Every frame is checked first: hdrmx equals h5py as stored, and its dxtbx convention equals
FormatNXmx's rule applied to h5py's frame. Then, one thread (OMP_NUM_THREADS=1 for
hdf5plugin), files in the page cache, methods interleaved within each pass, best of --passes,
ms per frame:

  read       h5py ds[i] (a new array, as dxtbx reads)    hdrmx read(i)
  read_into  h5py ds.read_direct(out, np.s_[i])          hdrmx read_into(i, out)
  dxtbx      h5py ds[i].astype(int32), top - 1 and top - 2 to -1 and -2 (FormatNXmx's work,
             in numpy)                                   hdrmx read(i) with dxtbx=True
  stack      h5py ds[0:n], a new (n, ny, nx) array        hdrmx read_many(range(n)), 2 threads
  get_raw_data  FormatNXmx                               FormatNXmxHdrmx (when dxtbx imports)
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
# read_many's pool (rayon reads this once, when the pool starts): what a second core adds.
os.environ["RAYON_NUM_THREADS"] = "2"
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402
import hdf5plugin  # noqa: E402
import numpy as np  # noqa: E402

import hdrmx_dials  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nxmx_geometry import complete_nxmx, group, set_attrs  # noqa: E402

# EIGER2 modules of 512 x 1028 pixels (slow, fast), gaps of 38 and 12 pixels between them.
MODULE_NY, MODULE_NX, GAP_Y, GAP_X = 512, 1028, 38, 12
DETECTORS = {"4m": (4, 2), "16m": (8, 4)}     # modules (slow, fast)


def shape(detector):
    my, mx = DETECTORS[detector]
    return my * MODULE_NY + (my - 1) * GAP_Y, mx * MODULE_NX + (mx - 1) * GAP_X


def gaps(ny, nx):
    m = np.zeros((ny, nx), bool)
    for y in range(MODULE_NY, ny, MODULE_NY + GAP_Y):
        m[y:y + GAP_Y] = True
    for x in range(MODULE_NX, nx, MODULE_NX + GAP_X):
        m[:, x:x + GAP_X] = True
    return m


def first_frame(rng, ny, nx, photons):
    frame = rng.poisson(photons, (ny, nx)).astype(np.uint32)
    for _ in range(300):
        y, x = rng.integers(3, ny - 3), rng.integers(3, nx - 3)
        frame[y - 2:y + 3, x - 2:x + 3] += rng.poisson(40, (5, 5)).astype(np.uint32)
    return frame


def write(work, ny, nx, n, per_file, photons):
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    gap = gaps(ny, nx)
    base = first_frame(rng, ny, nx, photons)
    names = []
    for k, first in enumerate(range(0, n, per_file), 1):
        count = min(per_file, n - first)
        name = f"bench_{k:06d}.h5"
        with h5py.File(work / name, "w") as f:
            ds = f.create_dataset("data", (count, ny, nx), np.uint32, chunks=(1, ny, nx),
                                  **hdf5plugin.Bitshuffle(cname="lz4"))
            for j in range(count):
                i = first + j
                frame = np.roll(base, (37 * i, 101 * i), axis=(0, 1))
                frame[gap] = 0xFFFFFFFF
                ds[j] = frame
        names.append((name, first, count))
    master = work / "bench_master.h5"
    with h5py.File(master, "w") as f:
        entry = group(f, "entry", "NXentry")
        entry["definition"] = "NXmx"
        det = group(group(entry, "instrument", "NXinstrument"), "detector", "NXdetector")
        for name, value, units in (("x_pixel_size", 7.5e-5, "m"), ("y_pixel_size", 7.5e-5, "m"),
                                   ("sensor_thickness", 4.5e-4, "m"), ("count_time", 0.0099, "s"),
                                   ("frame_time", 0.01, "s")):
            set_attrs(det.create_dataset(name, data=value), units=units)
        det["sensor_material"] = "Si"
        det["bit_depth_readout"] = np.uint32(32)
        det["saturation_value"] = np.uint32(10**7)
        det.create_dataset("pixel_mask", data=gap.astype(np.uint32), chunks=(ny, nx),
                           compression="gzip")
        group(entry, "sample", "NXsample")
        data = group(entry, "data", "NXdata")
        data.attrs["signal"] = "data"
        layout = h5py.VirtualLayout((n, ny, nx), np.uint32)
        for name, first, count in names:
            layout[first:first + count] = h5py.VirtualSource(name, "data", (count, ny, nx))
        data.create_virtual_dataset("data", layout)
    complete_nxmx(master)
    return master


def dxtbx_rule(raw, bit_depth=32):
    """FormatNXmx's conversion of an integer frame (dxtbx.nexus, FormatNXmx.get_raw_data)."""
    v = raw.astype(np.int32)
    top = 2**31 if bit_depth == 32 else 2**bit_depth
    v[v == top - 1] = -1
    v[v == top - 2] = -2
    return v


def best_ms(methods, n, passes):
    """{name: best ms per frame}, each method timed once per pass, interleaved."""
    best = {name: float("inf") for name in methods}
    for _ in range(passes):
        for name, run in methods.items():
            t = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - t) * 1e3 / n)
    return best


def measure(master, n, passes):
    """Checks every frame, then times both readers: [(what, reference, ref ms, ours, our ms)]."""
    f = h5py.File(master)
    ds = f["/entry/data/data"]
    ours = hdrmx_dials.open(master)
    ours_dx = hdrmx_dials.open(master, dxtbx=True, bit_depth=32)
    for i in range(n):       # the check, and a pass through the page cache
        ref = ds[i]
        if not np.array_equal(ours.read(i), ref):
            sys.exit(f"{master}: frame {i}: hdrmx and h5py differ")
        if not np.array_equal(ours_dx.read(i), dxtbx_rule(ref)):
            sys.exit(f"{master}: frame {i}: hdrmx's dxtbx convention differs from dxtbx's rule")
    if not np.array_equal(ours.read_many(range(n)), ds[()]):
        sys.exit(f"{master}: read_many differs from h5py")

    out_h5, out_ours = np.empty(ds.shape[1:], np.uint32), np.empty(ds.shape[1:], np.uint32)
    frames = range(n)
    def each(read):
        # One frame at a time, each dropped before the next: a frame-by-frame consumer.
        def run():
            for i in frames:
                read(i)
        return run

    rows = [
        ("read (new array)", "ds[i]", each(lambda i: ds[i]), "read(i)", each(ours.read)),
        ("read into one array", "read_direct", each(lambda i: ds.read_direct(out_h5, np.s_[i])),
         "read_into", each(lambda i: ours.read_into(i, out_ours))),
        ("dxtbx convention (int32)", "ds[i] + numpy", each(lambda i: dxtbx_rule(ds[i])),
         "dxtbx=True", each(ours_dx.read)),
        ("stack of n (2 threads)", "ds[0:n]", lambda: ds[0:n],
         "read_many", lambda: ours.read_many(frames)),
    ]
    try:
        from dxtbx.format.FormatNXmx import FormatNXmx

        from hdrmx_dials.format import FormatNXmxHdrmx

        ref_fmt, our_fmt = FormatNXmx(str(master)), FormatNXmxHdrmx(str(master))
        assert our_fmt._hdrmx is not None, "FormatNXmxHdrmx reads through h5py"
        rows.append(("get_raw_data", "FormatNXmx", each(ref_fmt.get_raw_data),
                     "FormatNXmxHdrmx", each(our_fmt.get_raw_data)))
        note = None
    except ImportError as e:
        note = f"get_raw_data: not measured, dxtbx is not importable ({e})"
    methods = {}
    for what, _, ref, _, mine in rows:
        methods[(what, "ref")], methods[(what, "ours")] = ref, mine
    best = best_ms(methods, n, passes)
    f.close()
    return [(what, rl, best[(what, "ref")], ol, best[(what, "ours")])
            for what, rl, _, ol, _ in rows], note


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--per-file", type=int, default=10)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--photons", type=float, nargs="+", default=[0.1, 1.0],
                   help="mean background per pixel, one dataset each")
    p.add_argument("--detector", choices=sorted(DETECTORS), default="4m")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    n = a.frames
    ny, nx = shape(a.detector)
    results, note = [], None
    for photons in a.photons:
        master = write(a.work / f"{photons:g}", ny, nx, n, a.per_file, photons)
        rows, note = measure(master, n, a.passes)
        results += [dict(photons=photons, what=what, reference=rl, reference_ms=r, ours=ol,
                         ours_ms=o, ratio=r / o) for what, rl, r, ol, o in rows]

    load = os.getloadavg()[0]
    print(f"\n{a.detector.upper()} ({ny} x {nx}) uint32, bitshuffle/LZ4, VDS master over data "
          f"files of {a.per_file} frames, {n} frames; ms per frame, one thread unless stated, "
          f"best of {a.passes} passes; load average {load:.1f} on {os.cpu_count()} CPUs\n")
    print(f"| photons/px | {'what':<26} | {'h5py + hdf5plugin':<24} | {'hdrmx_dials':<26} | ratio |")
    print(f"|-----------:|{'-' * 28}|{'-' * 25}:|{'-' * 27}:|------:|")
    for r in results:
        print(f"| {r['photons']:>10g} | {r['what']:<26} | {r['reference']:<13} "
              f"{r['reference_ms']:7.2f} ms | {r['ours']:<15} {r['ours_ms']:7.2f} ms | "
              f"{r['ratio']:4.1f}x |")
    if note:
        print(f"\n{note}")
    if a.out:
        a.out.write_text(json.dumps(dict(
            detector=a.detector, frames=n, shape=[ny, nx], dtype="uint32", passes=a.passes,
            load_average=load, h5py=h5py.version.version, hdf5=h5py.version.hdf5_version,
            hdf5plugin=hdf5plugin.version, hdrmx_dials=hdrmx_dials.__version__,
            results=results, note=note), indent=1))


if __name__ == "__main__":
    main()
