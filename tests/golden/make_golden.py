#!/usr/bin/env python3
"""Generate golden chunk vectors with the REFERENCE filters (h5py + hdf5plugin).

Each case writes a 1-D dataset of N elements as ONE chunk (chunks=(N,)) through
the reference HDF5 filter, then reads back the exact stored bytes with
``read_direct_chunk``.  Outputs, next to this script:

  <data>.raw      uncompressed elements, little-endian (shared between filters)
  <case>.chunk    the exact chunk bytes HDF5 stored
  manifest.json   one entry per case + the reference versions used

Deterministic: same inputs give byte-identical files.  Usage:

  python tests/golden/make_golden.py [--out DIR]
"""
import argparse
import ctypes
import io
import json
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

SEED = 20240601
DTYPES = ["uint8", "uint16", "uint32", "uint64"]
BS_LENGTHS = [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127,
              2047, 2048, 2049, 4095, 8191, 8192, 8193, 20000]
FILTER_IDS = {"bslz4": 32008, "bszstd": 32008, "bitshuffle": 32008, "lz4": 32004, "zstd": 32015}


def detector_like(dtype, n):
    """Mostly Poisson(0.5) counts, ~1% spikes, ~0.2% (and the middle pixel) at dtype max."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng([SEED, dt.itemsize, n, 0])
    vmax = int(np.iinfo(dt).max)
    a = rng.poisson(0.5, n).astype(np.uint64)
    spikes = rng.random(n) < 0.01
    a[spikes] = rng.integers(20, min(vmax, 200_000), spikes.sum(), dtype=np.uint64)
    a[rng.random(n) < 0.002] = vmax
    if n >= 7:
        a[n // 2] = vmax
    return a.astype(dt.newbyteorder("<"))


def random_data(dtype, n):
    dt = np.dtype(dtype)
    rng = np.random.default_rng([SEED, dt.itemsize, n, 1])
    return rng.integers(0, np.iinfo(dt).max, n, dtype=dt, endpoint=True).astype(dt.newbyteorder("<"))


def mixed_data(dtype, n, block_elems):
    """Alternate compressible / random blocks so a 32004 chunk mixes LZ4 and raw blocks."""
    a = detector_like(dtype, n)
    r = random_data(dtype, n)
    for start in range(block_elems, n, 2 * block_elems):
        a[start:start + block_elems] = r[start:start + block_elems]
    return a


def reference_chunk(arr, flt):
    """Write arr as one chunk through flt; return (stored cd_values, filter_mask, chunk bytes)."""
    bio = io.BytesIO()
    with h5py.File(bio, "w") as h:
        d = h.create_dataset("d", data=arr, chunks=arr.shape, **flt)
        _flags, cd_values, _name = d.id.get_create_plist().get_filter_by_id(flt["compression"])
        mask, chunk = d.id.read_direct_chunk((0,))
    return [int(v) for v in cd_values], int(mask), bytes(chunk)


def lib_version(path, symbol):
    try:
        f = getattr(ctypes.CDLL(path), symbol)
    except (OSError, AttributeError):
        return None
    f.restype = ctypes.c_char_p
    return f().decode()


def reference_versions():
    regs = hdf5plugin.get_config().registered_filters
    build = hdf5plugin.get_config().build_config
    return {
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
        "hdf5plugin": hdf5plugin.version,
        "numpy": np.__version__,
        "hdf5plugin_lz4_lib": lib_version(regs["lz4"], "LZ4_versionString"),
        "hdf5plugin_zstd_lib": lib_version(regs["zstd"], "ZSTD_versionString"),
        "hdf5plugin_bshuf_lz4_lib": lib_version(regs["bshuf"], "LZ4_versionString"),
        "hdf5plugin_bshuf_zstd_lib": lib_version(regs["bshuf"], "ZSTD_versionString"),
        "hdf5plugin_build_avx2": bool(build.avx2),
    }


def case_list():
    """Yield (case name, data name, data factory, codec, hdf5plugin filter kwargs)."""
    def det(dt, n):
        return f"det_u{np.dtype(dt).itemsize * 8}_n{n}", lambda: detector_like(dt, n)

    for codec, mk in [("bslz4", lambda nel: hdf5plugin.Bitshuffle(nelems=nel, cname="lz4")),
                      ("bszstd", lambda nel: hdf5plugin.Bitshuffle(nelems=nel, cname="zstd", clevel=3))]:
        for dt in DTYPES:
            for n in BS_LENGTHS:
                dname, f = det(dt, n)
                yield f"{codec}_{dname}", dname, f, codec, mk(0)
        for dt in ["uint16", "uint32"]:
            for nel in [64, 1024]:
                dname, f = det(dt, 8193)
                yield f"{codec}_b{nel}_{dname}", dname, f, codec, mk(nel)
        yield f"{codec}_rand_u32_n3000", "rand_u32_n3000", lambda: random_data("uint32", 3000), codec, mk(0)

    for dt in DTYPES:  # bitshuffle without compression (cd_values[4] = 0): no header
        for n in [17, 2049]:
            dname, f = det(dt, n)
            yield f"bitshuffle_{dname}", dname, f, "bitshuffle", hdf5plugin.Bitshuffle(cname="none")

    for dt in ["uint16", "uint32"]:
        for n in [1, 9, 2049, 20000]:
            dname, f = det(dt, n)
            yield f"lz4_{dname}", dname, f, "lz4", hdf5plugin.LZ4()
            yield f"lz4_b4096_{dname}", dname, f, "lz4", hdf5plugin.LZ4(nbytes=4096)
    yield "lz4_rand_u32_n3000", "rand_u32_n3000", lambda: random_data("uint32", 3000), "lz4", hdf5plugin.LZ4()
    yield ("lz4_b4096_mixed_u32_n5000", "mixed_u32_n5000", lambda: mixed_data("uint32", 5000, 1024),
           "lz4", hdf5plugin.LZ4(nbytes=4096))

    for dt in ["uint16", "uint32"]:
        for n in [1, 2049, 20000]:
            dname, f = det(dt, n)
            yield f"zstd_{dname}", dname, f, "zstd", hdf5plugin.Zstd(clevel=3)
    dname, f = det("uint32", 20000)
    yield f"zstd_l19_{dname}", dname, f, "zstd", hdf5plugin.Zstd(clevel=19)
    yield "zstd_rand_u32_n3000", "rand_u32_n3000", lambda: random_data("uint32", 3000), "zstd", hdf5plugin.Zstd(clevel=3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.raw")) + list(out.glob("*.chunk")):
        old.unlink()

    cases, raws = [], {}
    for name, dname, make, codec, flt in case_list():
        if dname not in raws:
            raws[dname] = make()
            (out / f"{dname}.raw").write_bytes(raws[dname].tobytes())
        arr = raws[dname]
        cd_values, mask, chunk = reference_chunk(arr, flt)
        assert flt["compression"] == FILTER_IDS[codec]
        (out / f"{name}.chunk").write_bytes(chunk)
        cases.append({
            "name": name,
            "codec": codec,
            "filter_id": FILTER_IDS[codec],
            "cd_values": cd_values,
            "filter_mask": mask,  # nonzero: HDF5 skipped the filter, chunk is raw
            "dtype": arr.dtype.name,
            "elem_size": arr.dtype.itemsize,
            "n_elements": int(arr.size),
            "raw": f"{dname}.raw",
            "chunk": f"{name}.chunk",
        })

    # One case per line: stable, diff-friendly, valid JSON.
    head = json.dumps({"generator": "tests/golden/make_golden.py", "seed": SEED,
                       "reference": reference_versions()}, sort_keys=True)
    lines = ",\n".join("  " + json.dumps(c) for c in cases)
    (out / "manifest.json").write_text(head[:-1] + ', "cases": [\n' + lines + "\n]}\n")
    total = sum(p.stat().st_size for p in out.iterdir() if p.suffix in (".raw", ".chunk", ".json"))
    skipped = sum(c["filter_mask"] != 0 for c in cases)
    print(f"{len(cases)} cases, {len(raws)} raw files, {total} bytes total, {skipped} with filter skipped")


if __name__ == "__main__":
    main()
