#!/usr/bin/env python3
"""The plugin half of `cargo xtask demo`: frames written through our HDF5 plugin with h5py, read
back through the reference (hdf5plugin), and shown by h5dump.

Usage: demo_filters.py --plugin-dir DIR --frames FRAMES_DIR --out OUT_DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

COPIES = 10

WRITE = textwrap.dedent(
    """
    import sys, time, numpy as np, h5py
    raw, dtype, ny, nx, path, copies = sys.argv[1:7]
    frame = np.fromfile(raw, dtype=dtype).reshape(int(ny), int(nx))
    t = time.perf_counter()
    with h5py.File(path, "w") as f:
        d = f.create_dataset("entry/data/data", shape=(int(copies), int(ny), int(nx)), dtype=dtype,
                             chunks=(1, int(ny), int(nx)), compression=32008, compression_opts=(0, 2))
        for i in range(int(copies)):
            d[i] = frame
    print(time.perf_counter() - t)
    """
)

READ = textwrap.dedent(
    """
    import sys, numpy as np, h5py, hdf5plugin
    raw, dtype, ny, nx, path = sys.argv[1:6]
    frame = np.fromfile(raw, dtype=dtype).reshape(int(ny), int(nx))
    with h5py.File(path, "r") as f:
        d = f["entry/data/data"]
        ok = all((d[i] == frame).all() for i in range(d.shape[0]))
        print("ok" if ok else "DIFFERENT")
    """
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--frames", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ours = {k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"}
    ours["HDF5_PLUGIN_PATH"] = str(Path(a.plugin_dir).resolve())
    reference = {k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"}
    print(f"\nHDF5 plugins: h5py writes {COPIES} frames through libhdrmx_h5bshuf.so "
          f"(HDF5_PLUGIN_PATH={ours['HDF5_PLUGIN_PATH']}, no hdf5plugin imported),")
    print("the reference plugin (hdf5plugin) reads them back, h5dump shows the filter.\n")
    for meta_path in sorted(Path(a.frames).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        ny, nx = meta["shape"]
        raw = meta_path.with_suffix(".raw")
        h5 = out / f"{meta['name']}.h5"
        args = [str(raw), meta["dtype"], str(ny), str(nx), str(h5)]
        w = subprocess.run([sys.executable, "-c", WRITE, *args, str(COPIES)], env=ours,
                           capture_output=True, text=True, check=True)
        seconds = float(w.stdout.strip())
        r = subprocess.run([sys.executable, "-c", READ, *args], env=reference,
                           capture_output=True, text=True, check=True)
        raw_bytes = raw.stat().st_size * COPIES
        print(f"{meta['name']}: {raw_bytes / 1e6:.0f} MB written in {seconds:.2f} s, "
              f"file {h5.stat().st_size / 1e6:.1f} MB (ratio {raw_bytes / h5.stat().st_size:.1f}); "
              f"hdf5plugin reads it back: {r.stdout.strip()}")
        if r.stdout.strip() != "ok":
            sys.exit("the reference read different data")
    if shutil.which("h5dump"):
        dump = subprocess.run(["h5dump", "-p", "-H", "-d", "entry/data/data", str(h5)], env=ours,
                              capture_output=True, text=True)
        lines = dump.stdout.splitlines()
        start = next((i for i, l in enumerate(lines) if "FILTERS" in l), None)
        if start is not None:
            print("\nh5dump -p -H (HDF5 1.10, through our plugin):")
            print("\n".join(lines[start:start + 8]))


if __name__ == "__main__":
    main()
