"""The reference for `cargo xtask bench write`: h5py writing the same pre-compressed chunk N times
with direct chunk writes (`write_direct_chunk`) into data files of 1000 frames, then a VDS master,
one thread. Prints one JSON line: frames, seconds."""
import argparse
import json
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

NX, NY = 4148, 4362  # EIGER2 16M


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunk", required=True, type=Path)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--dir", required=True, type=Path)
    a = ap.parse_args()
    chunk = a.chunk.read_bytes()
    shutil.rmtree(a.dir, ignore_errors=True)
    a.dir.mkdir(parents=True)
    per_file = 1000
    start = time.perf_counter()
    files = []
    for k in range(0, a.frames, per_file):
        n = min(per_file, a.frames - k)
        name = f"ref_data_{len(files) + 1:06d}.h5"
        with h5py.File(a.dir / name, "w") as f:
            d = f.create_dataset("/entry/data/data", shape=(n, NY, NX), dtype="<u4",
                                 chunks=(1, NY, NX), compression=32008,
                                 compression_opts=(0, 5, 4, 0, 2), allow_unknown_filter=True)
            for i in range(n):
                d.id.write_direct_chunk((i, 0, 0), chunk)
        files.append((name, n))
    layout = h5py.VirtualLayout(shape=(a.frames, NY, NX), dtype="<u4")
    at = 0
    for name, n in files:
        layout[at:at + n] = h5py.VirtualSource(name, "/entry/data/data", shape=(n, NY, NX))
        at += n
    with h5py.File(a.dir / "ref_master.h5", "w") as f:
        f.create_virtual_dataset("/entry/data/data", layout)
    secs = time.perf_counter() - start
    shutil.rmtree(a.dir, ignore_errors=True)
    print(json.dumps({"frames": a.frames, "seconds": secs, "chunk_bytes": len(chunk),
                      "h5py": h5py.version.version, "hdf5": h5py.version.hdf5_version}))


if __name__ == "__main__":
    main()
