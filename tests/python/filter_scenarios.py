#!/usr/bin/env python3
"""Worker for test_filters.py: one HDF5 filter scenario per process.

Two implementations of one filter id cannot live in one process (whichever registers
first wins), so test_filters.py runs each scenario here, in a fresh interpreter, with a
controlled environment:

  --mode ours   HDF5_PLUGIN_PATH = a directory holding ONLY our three plugins;
                hdf5plugin is never imported.
  --mode ref    hdf5plugin imported (it registers its filters on import);
                HDF5_PLUGIN_PATH unset.
  --mode plain  neither (HDF5_PLUGIN_PATH = an empty directory): uncompressed files only.

Every subcommand prints ONE JSON object as the last line of stdout; the exit status is 0
whenever the scenario itself ran (a failed read is data in the JSON, not a crash).
Each result carries "plugins": the filter libraries mapped into this process
(/proc/self/maps), so the test can prove which implementation did the work.

Data are deterministic: dataset "<dtype>_<layout>" always holds make_data(dtype, layout),
so a reader in another process regenerates what it should find. This module imports only
numpy at top level, so test_filters.py can import it for VARIANTS/make_data.
"""
import argparse
import json
import os
import sys
import zlib

import numpy as np

BSHUF, LZ4, ZSTD = 32008, 32004, 32015
OUR_LIB = {BSHUF: "libhdrmx_h5bshuf.so", LZ4: "libhdrmx_h5lz4.so", ZSTD: "libhdrmx_h5zstd.so"}

# name -> (filter id, compression_opts as a user passes them, hdf5plugin equivalent)
# The hdf5plugin equivalent is (class name, kwargs); built lazily in ref mode only.
VARIANTS = {
    "bslz4": (BSHUF, (0, 2), ("Bitshuffle", {"nelems": 0, "cname": "lz4"})),
    "bslz4_b1024": (BSHUF, (1024, 2), ("Bitshuffle", {"nelems": 1024, "cname": "lz4"})),
    "bsnone": (BSHUF, (0, 0), ("Bitshuffle", {"nelems": 0, "cname": "none"})),
    "bszstd5": (BSHUF, (0, 3, 5), ("Bitshuffle", {"nelems": 0, "cname": "zstd", "clevel": 5})),
    "lz4": (LZ4, (0,), ("LZ4", {"nbytes": 0})),
    "lz4_4096": (LZ4, (4096,), ("LZ4", {"nbytes": 4096})),
    "zstd3": (ZSTD, (3,), ("Zstd", {"clevel": 3})),
}

DTYPES = ["uint8", "uint16", "uint32", "uint64", "float32"]

# name -> (dataset shape, chunk shape).  Edge chunks are partial in all the 3-D layouts;
# "odd_tail" chunks hold 231 elements (not a multiple of 8: the raw tail of bitshuffle);
# "long1d" chunks hold 8193 elements (one past a default block for 1-byte types).
LAYOUTS = {
    "odd": ((5, 37, 41), (2, 16, 9)),
    "odd_tail": ((5, 37, 41), (3, 7, 11)),
    "multi": ((7, 33, 40), (3, 33, 40)),
    "frame": ((4, 48, 64), (1, 48, 64)),
    "long1d": ((20003,), (8193,)),
    "random": ((2, 64, 100), (1, 64, 100)),
}


def dataset_names():
    return [f"{dt}_{lay}" for dt in DTYPES for lay in LAYOUTS]


def split_name(name):
    dt, lay = name.split("_", 1)
    return dt, lay


def make_data(dtype, layout):
    """Detector-like counts (Poisson, spikes, saturated pixels), or full-range noise for
    the "random" layout (incompressible, so LZ4 blocks may be stored raw)."""
    shape = LAYOUTS[layout][0]
    dt = np.dtype(dtype)
    rng = np.random.default_rng(zlib.crc32(f"{dt.name}/{layout}".encode()))
    n = int(np.prod(shape))
    if dt.kind == "f":
        if layout == "random":
            a = (rng.standard_normal(n) * 1e4).astype(dt)
        else:
            a = rng.poisson(1.0, n).astype(dt) * np.float32(0.25)
            a[rng.random(n) < 0.01] = np.float32(-1.5)
    else:
        vmax = np.iinfo(dt).max
        if layout == "random":
            a = rng.integers(0, vmax, n, dtype=dt, endpoint=True)
        else:
            a = rng.poisson(1.0, n).astype(dt)
            spikes = rng.random(n) < 0.01
            a[spikes] = rng.integers(20, min(vmax, 100_000), int(spikes.sum()), dtype=dt)
            a[rng.random(n) < 0.002] = vmax
    return a.reshape(shape)


def loaded_plugins():
    """Filter libraries mapped into this process: ours and hdf5plugin's."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip() if len(line.split()) >= 6 else ""
                if "libhdrmx_h5" in path or "/hdf5plugin/" in path:
                    libs.add(path)
    except OSError:
        pass
    return sorted(libs)


def setup_mode(mode):
    """Import h5py (and hdf5plugin in ref mode) with the environment the mode promises."""
    if mode == "ref":
        if os.environ.get("HDF5_PLUGIN_PATH"):
            raise SystemExit("ref mode: HDF5_PLUGIN_PATH must be unset")
        import hdf5plugin  # noqa: F401  (registers the reference filters)
    else:
        if "hdf5plugin" in sys.modules:
            raise SystemExit(f"{mode} mode: hdf5plugin must not be imported")
        if not os.environ.get("HDF5_PLUGIN_PATH"):
            raise SystemExit(f"{mode} mode: HDF5_PLUGIN_PATH must be set")
    import h5py

    return h5py


def filter_kwargs(mode, variant):
    fid, opts, (cls, kw) = VARIANTS[variant]
    if mode == "ref":
        import hdf5plugin

        return dict(getattr(hdf5plugin, cls)(**kw))
    return {"compression": fid, "compression_opts": opts}


def pipeline(dset):
    plist = dset.id.get_create_plist()
    out = []
    for i in range(plist.get_nfilters()):
        fid, flags, cd, name = plist.get_filter(i)
        out.append({"id": int(fid), "flags": int(flags), "cd_values": [int(c) for c in cd],
                    "name": name.decode(errors="replace")})
    return out


def unfiltered_chunks(dset):
    """Chunks stored with a nonzero filter mask, i.e. with a filter skipped. An OPTIONAL
    filter (h5py's default flag) that fails on write leaves its chunk unfiltered, silently;
    this makes such a failure visible."""
    n = dset.id.get_num_chunks()
    return sum(1 for i in range(n) if dset.id.get_chunk_info(i).filter_mask != 0)


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def describe_mismatch(got, want):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)}"
    diff = np.flatnonzero(got.reshape(-1).view(f"u{got.itemsize}")
                          != want.reshape(-1).view(f"u{want.itemsize}"))
    i = int(diff[0])
    return (f"{diff.size} of {got.size} elements differ; first at flat index {i}: "
            f"got {got.reshape(-1)[i]!r}, want {want.reshape(-1)[i]!r}")


def write_datasets(h5py, path, mode, variant, names):
    """Write each dataset; returns {name: pipeline} or {name: {"error": ...}}."""
    out = {}
    with h5py.File(path, "w") as f:
        for name in names:
            dt, lay = split_name(name)
            data = make_data(dt, lay)
            try:
                if variant is None:
                    d = f.create_dataset(name, data=data, chunks=LAYOUTS[lay][1])
                else:
                    d = f.create_dataset(name, data=data, chunks=LAYOUTS[lay][1],
                                         **filter_kwargs(mode, variant))
                out[name] = {"pipeline": pipeline(d)}
            except Exception as e:  # recorded, the test decides
                out[name] = {"error": f"{type(e).__name__}: {e}"}
    return out


def read_datasets(h5py, path):
    """Read every dataset of the file and compare with make_data; also report pipelines."""
    out = {}
    with h5py.File(path, "r") as f:
        for name in sorted(f):
            dt, lay = split_name(name)
            want = make_data(dt, lay)
            d = f[name]
            rec = {"pipeline": pipeline(d), "unfiltered_chunks": unfiltered_chunks(d)}
            try:
                got = d[()]
                rec["ok"] = same(got, want)
                if not rec["ok"]:
                    rec["error"] = describe_mismatch(got, want)
                # And frame by frame through read_direct (another selection path).
                if rec["ok"] and d.ndim == 3:
                    buf = np.empty(d.shape[1:], d.dtype)
                    for i in range(d.shape[0]):
                        d.read_direct(buf, np.s_[i])
                        if not same(buf, want[i]):
                            rec["ok"] = False
                            rec["error"] = f"read_direct frame {i}: " + describe_mismatch(buf, want[i])
                            break
            except Exception as e:
                rec["ok"] = False
                rec["error"] = f"{type(e).__name__}: {e}"
            out[name] = rec
    return out


def reference_cd_values(h5py, variant):
    """cd_values hdf5plugin's filter stores (after its set_local) for each dtype."""
    out = {}
    with h5py.File("refcd.h5", "w", driver="core", backing_store=False) as f:
        for dt in DTYPES:
            d = f.create_dataset(dt, shape=(4, 10, 10), dtype=dt, chunks=(1, 10, 10),
                                 **filter_kwargs("ref", variant))
            out[dt] = pipeline(d)
    return out


# ---------------------------------------------------------------- corrupt chunks

CORRUPT_SHAPE, CORRUPT_CHUNK = (3, 100, 100), (1, 100, 100)  # uint16: 20000-byte chunks


def zstd_frame_claiming(size, payload=b"abcd"):
    """A well-formed single-segment zstd frame whose Frame_Content_Size field says `size`
    but which holds one raw block of `payload`."""
    magic = (0xFD2FB528).to_bytes(4, "little")
    fhd = bytes([0b1110_0000])  # FCS field 8 bytes, single segment, no checksum, no dict
    fcs = int(size).to_bytes(8, "little")
    block_header = ((len(payload) << 3) | (0 << 1) | 1).to_bytes(3, "little")  # raw, last
    return magic + fhd + fcs + block_header + payload


def corrupt(case, good):
    b = bytearray(good)
    if case == "truncated":
        return bytes(b[: len(b) // 2])
    if case == "truncated_header":
        return bytes(b[:7])
    if case == "bitflip_size":  # u64 BE size += 2**20: blocks run out before the size is met
        b[5] ^= 0x10
        return bytes(b)
    if case == "bitflip_blocksize":  # u32 BE block bytes 8192 -> 24576: block 0 decodes short
        b[10] ^= 0x40
        return bytes(b)
    if case == "block_claims_ffffffff":  # first block's compressed size
        b[12:16] = b"\xff\xff\xff\xff"
        return bytes(b)
    if case == "header_2pow60":
        b[0:8] = (1 << 60).to_bytes(8, "big")
        return bytes(b)
    if case == "fcs_2pow60":
        return zstd_frame_claiming(1 << 60)
    if case == "garbage":
        return b"this is not a compressed chunk" * 10
    raise ValueError(case)


# filter variant -> corruption cases applied to chunk 0
CORRUPT_CASES = {
    "bslz4": ["truncated", "truncated_header", "bitflip_size", "bitflip_blocksize",
              "block_claims_ffffffff", "header_2pow60"],
    "bszstd5": ["truncated", "block_claims_ffffffff", "header_2pow60"],
    "lz4": ["truncated", "truncated_header", "block_claims_ffffffff", "header_2pow60"],
    "zstd3": ["truncated", "fcs_2pow60", "garbage"],
}


def corrupt_data():
    rng = np.random.default_rng(20240)
    return rng.poisson(1.0, CORRUPT_SHAPE).astype(np.uint16)


def make_corrupt_file(h5py, path, variant):
    data = corrupt_data()
    out = {}
    with h5py.File(path, "w") as f:
        for case in CORRUPT_CASES[variant]:
            d = f.create_dataset(case, data=data, chunks=CORRUPT_CHUNK,
                                 **filter_kwargs("ref", variant))
            mask, good = d.id.read_direct_chunk((0, 0, 0))
            bad = corrupt(case, good)
            d.id.write_direct_chunk((0, 0, 0), bad, mask)
            out[case] = {"good_bytes": len(good), "bad_bytes": len(bad)}
    return out


def read_corrupt(h5py, path, case):
    want = corrupt_data()
    rec = {}
    with h5py.File(path, "r") as f:
        d = f[case]
        for attempt in ("first", "second"):  # a second read must fail the same way
            try:
                got = d[0]
                rec[attempt] = {"raised": False, "equal": same(got, want[0])}
            except Exception as e:
                rec[attempt] = {"raised": True, "type": type(e).__name__, "message": str(e)}
        try:
            rec["rest_ok"] = same(d[1:], want[1:])
        except Exception as e:
            rec["rest_ok"] = False
            rec["rest_error"] = f"{type(e).__name__}: {e}"
    return rec


# ---------------------------------------------------------------- can_apply

def can_apply_type(h5py, kind, path):
    """Create a 32008 dataset of an element type bitshuffle cannot handle (or the uint16
    control). If creation is NOT refused, write data, reopen and read back: whatever HDF5
    lets through must at least not corrupt data."""
    types = {
        "S3": np.dtype("S3"),
        "compound3": np.dtype([("a", "<u2"), ("b", "u1")]),
        "compound12": np.dtype([("a", "<u4"), ("b", "<f8")]),
        "vlen_str": h5py.string_dtype(),
        "uint16": np.dtype("uint16"),  # control: must be accepted
    }
    dt = types[kind]
    if kind == "vlen_str":
        data = np.array([f"frame {i} " * (i + 1) for i in range(40)], dtype=object).reshape(4, 10)
    elif kind == "S3":
        data = np.array([b"abc"] * 40, dtype=dt).reshape(4, 10)
    else:
        data = np.arange(40).astype(dt) if dt.names is None else np.zeros(40, dt)
        data = data.reshape(4, 10)
    with h5py.File(path, "w") as f:
        try:
            d = f.create_dataset("x", shape=(4, 10), dtype=dt, chunks=(1, 10),
                                 compression=BSHUF, compression_opts=(0, 2))
        except Exception as e:
            return {"raised": True, "type": type(e).__name__, "message": str(e)}
        rec = {"raised": False, "pipeline": pipeline(d)}
        try:
            d[...] = data
        except Exception as e:
            rec["write_error"] = f"{type(e).__name__}: {e}"
    if "write_error" not in rec:
        with h5py.File(path, "r") as f:
            d = f["x"]
            rec["unfiltered_chunks"] = unfiltered_chunks(d)
            try:
                got = d[()]
                if kind == "vlen_str":
                    rec["roundtrip"] = [g.decode() if isinstance(g, bytes) else g
                                        for g in got.reshape(-1)] == list(data.reshape(-1))
                else:
                    rec["roundtrip"] = same(got, data)
            except Exception as e:
                rec["roundtrip"] = False
                rec["read_error"] = f"{type(e).__name__}: {e}"
    return rec


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["write", "read", "roundtrip", "make-corrupt",
                                        "read-corrupt", "can-apply"])
    ap.add_argument("--mode", choices=["ours", "ref", "plain"], required=True)
    ap.add_argument("--file")
    ap.add_argument("--variant", help="filter variant (see VARIANTS); omit for uncompressed")
    ap.add_argument("--ref-cd", action="store_true",
                    help="read: also report the cd_values hdf5plugin stores for --variant")
    ap.add_argument("--case", help="read-corrupt: dataset (corruption case) to read")
    ap.add_argument("--kind", help="can-apply: element type to try")
    args = ap.parse_args()

    h5py = setup_mode(args.mode)
    res = {"mode": args.mode, "hdf5": h5py.version.hdf5_version}
    if args.command == "write":
        res["datasets"] = write_datasets(h5py, args.file, args.mode, args.variant, dataset_names())
    elif args.command == "read":
        res["datasets"] = read_datasets(h5py, args.file)
        if args.ref_cd:
            res["ref_cd"] = reference_cd_values(h5py, args.variant)
    elif args.command == "roundtrip":
        # hdf5plugin issue 204: write AND read in one process, plugins found only through
        # HDF5_PLUGIN_PATH. Write, close, reopen, read (chunks are decoded, not cached);
        # then append to the open file and read that back after another reopen.
        res["written"] = write_datasets(h5py, args.file, args.mode, args.variant, dataset_names())
        res["datasets"] = read_datasets(h5py, args.file)
        extra = make_data("uint16", "frame")
        try:
            with h5py.File(args.file, "a") as f:
                d = f.create_dataset("extra", shape=extra.shape, dtype=extra.dtype,
                                     chunks=LAYOUTS["frame"][1],
                                     **filter_kwargs(args.mode, args.variant))
                for i in range(extra.shape[0]):
                    d[i] = extra[i]
            with h5py.File(args.file, "r") as f:
                res["extra_ok"] = same(f["extra"][()], extra)
                if not res["extra_ok"]:
                    res["extra_error"] = describe_mismatch(f["extra"][()], extra)
        except Exception as e:
            res["extra_ok"] = False
            res["extra_error"] = f"{type(e).__name__}: {e}"
    elif args.command == "make-corrupt":
        res["cases"] = make_corrupt_file(h5py, args.file, args.variant)
    elif args.command == "read-corrupt":
        res["result"] = read_corrupt(h5py, args.file, args.case)
    elif args.command == "can-apply":
        res["result"] = can_apply_type(h5py, args.kind, args.file)
    res["plugins"] = loaded_plugins()
    sys.stdout.flush()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
