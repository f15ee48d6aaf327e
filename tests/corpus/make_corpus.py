#!/usr/bin/env python3
"""Generate the HDF5 test corpus for neggia-rs, the pure-Rust read-only HDF5 reader.

    .venv/bin/python tests/corpus/make_corpus.py tests/corpus/files

writes a few dozen small HDF5 files into OUTDIR plus OUTDIR/manifest.json, which
records, for every file, what h5py (the reference) reads from it: the groups and
datasets reachable from "/", each dataset's shape/dtype/layout/chunking/filters
and a sha256 of its data, every attribute value, soft and external links, NXmx
frame stacks, and the reads that must fail (with why).

File families (one function each, see README.md for the full table):

  nxmx_small_<libver>  the same small NXmx-like content at libver earliest, v108,
                       v110, v112 and latest (superblocks 0, 2, 3, 3, 3)
  superblock1          superblock v1 (non-default istore_k and sym_k)
  swmr_open            a SWMR file copied while its writer still had it open
  groups_*             symbol-table, compact, dense and 2000-member groups
  links_* (+ sub/)     hard, soft, dangling and external links
  attributes_*         attribute types; compact/dense storage; header continuations
  dtypes_*             every integer/float type in both byte orders, strings, dataspaces
  layouts_*            contiguous, compact and every chunk index HDF5 writes
  filters_*            filter pipelines, incl. unsupported ones (expected errors)
  eiger1_*, eiger2_*, dls*, ib_*, mt_*, vds_*, printf_*
                       EIGER/NXmx masters: external-link and VDS frame stacks

Everything is deterministic: fixed numpy seeds, no timestamps (track_times off on
every object), fixed libver bounds.  Running it twice gives byte-identical files.
It needs numpy, h5py and hdf5plugin; the HDF5 library is the one bundled with h5py.
Structural claims (superblock versions, chunk index types, ...) are checked by
check_corpus.py, which decodes the file bytes independently of HDF5.
"""

import argparse
import ctypes
import functools
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile

import h5py
import hdf5plugin
import numpy as np

h5d, h5f, h5p, h5s, h5t = h5py.h5d, h5py.h5f, h5py.h5p, h5py.h5s, h5py.h5t

# Detector frame size: small enough to keep the corpus tiny, large enough for
# 16x16 tiles, partial edge chunks and a "module gap" in the pixel mask.
NY, NX = 48, 64

LIBVER_BOUNDS = {
    "earliest": h5f.LIBVER_EARLIEST,
    "v108": h5f.LIBVER_V18,
    "v110": h5f.LIBVER_V110,
    "v112": h5f.LIBVER_V112,
    "latest": h5f.LIBVER_LATEST,
}

BSLZ4 = hdf5plugin.Bitshuffle(cname="lz4")

# Reads the reader must refuse, and datasets whose true content h5py cannot
# give us (it silently substitutes the fill value for a missing VDS source).
# Filled in by the writers, consumed by the manifest builder.
EXPECTED_ERRORS = []
NO_SHA = set()


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def hdf5_lib():
    """The HDF5 library h5py is linked against, for the few property-list calls
    h5py does not wrap (istore_k, sym_k, chunk options).  Loading the same file
    path returns the handle h5py already uses, so ids are shared."""
    libdir = os.path.join(os.path.dirname(os.path.dirname(h5py.__file__)), "h5py.libs")
    candidates = sorted(glob.glob(os.path.join(libdir, "libhdf5-*.so*")))
    lib = ctypes.CDLL(candidates[0] if candidates else "libhdf5.so")
    lib.H5Pset_istore_k.argtypes = [ctypes.c_int64, ctypes.c_uint]
    lib.H5Pset_sym_k.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]
    lib.H5Pset_chunk_opts.argtypes = [ctypes.c_int64, ctypes.c_uint]
    return lib


def create_file(path, libver, istore_k=None, sym_k=None):
    """Create an HDF5 file with libver bounds (libver, latest).

    h5py's File() cannot set istore_k/sym_k, so those go through the low-level
    API.  Note: HDF5 2.0's *library* default (H5P_DEFAULT fapl) is v108
    (superblock 2); h5py.File(libver=None) still asks for earliest."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if istore_k is None and sym_k is None:
        return h5py.File(path, "w", libver=libver)
    lib = hdf5_lib()
    fcpl = h5p.create(h5p.FILE_CREATE)
    if istore_k is not None:
        assert lib.H5Pset_istore_k(fcpl.id, istore_k) >= 0
    if sym_k is not None:
        assert lib.H5Pset_sym_k(fcpl.id, *sym_k) >= 0
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(LIBVER_BOUNDS[libver], h5f.LIBVER_LATEST)
    fid = h5f.create(path.encode(), h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    return h5py.File(fid)


def dset(parent, name, data=None, **kw):
    """create_dataset without timestamps (they would make the bytes differ run to run)."""
    return parent.create_dataset(name, data=data, track_times=False, **kw)


def new_dcpl():
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    return dcpl


def ll_dset(parent, name, dcpl, data=None, dtype=None, shape=None, maxshape=None):
    """Create a dataset through the low-level API (compact layout, custom filter
    order, early allocation, ...) and optionally write `data`."""
    dtype = np.dtype(dtype if dtype is not None else data.dtype)
    shape = tuple(shape if shape is not None else data.shape)
    if shape == ():
        space = h5s.create(h5s.SCALAR)
    else:
        space = h5s.create_simple(shape, maxshape)
    dsid = h5d.create(parent.id, name.encode(), h5t.py_create(dtype, logical=True), space, dcpl=dcpl)
    ds = h5py.Dataset(dsid)
    if data is not None:
        ds[...] = data
    return ds


def fixed_str_type(nbytes, pad=h5t.STR_NULLTERM, cset=h5t.CSET_ASCII):
    tid = h5t.C_S1.copy()
    tid.set_size(nbytes)
    tid.set_strpad(pad)
    tid.set_cset(cset)
    return tid


def fixed_str_dset(parent, name, text, pad=h5t.STR_NULLTERM, size=None):
    """Fixed-length string dataset with an explicit padding type.  h5py's own
    fixed strings are always NULLPAD; EIGER writes NULLTERM."""
    raw = text.encode()
    size = size or len(raw) + (1 if pad == h5t.STR_NULLTERM else 0)
    tid = fixed_str_type(size, pad)
    fill = b" " if pad == h5t.STR_SPACEPAD else b"\0"
    buf = np.array(raw.ljust(size, fill), dtype=f"S{size}")
    dsid = h5d.create(parent.id, name.encode(), tid, h5s.create(h5s.SCALAR), dcpl=new_dcpl())
    dsid.write(h5s.ALL, h5s.ALL, buf, mtype=tid)
    return h5py.Dataset(dsid)


def fixed_str_attr(obj, name, text, pad=h5t.STR_NULLTERM):
    raw = text.encode()
    size = len(raw) + (1 if pad == h5t.STR_NULLTERM else 0)
    tid = fixed_str_type(size, pad)
    aid = h5py.h5a.create(obj.id, name.encode(), tid, h5s.create(h5s.SCALAR))
    aid.write(np.array(raw.ljust(size, b"\0"), dtype=f"S{size}"), mtype=tid)


def nxgroup(parent, name, nx_class):
    """Group with the NX_class attribute, a variable-length UTF-8 string as h5py
    writes Python str by default (the common NeXus case)."""
    g = parent.create_group(name)
    g.attrs["NX_class"] = nx_class
    return g


def sha256_le(arr):
    """Digest of numeric data as little-endian bytes (the manifest convention)."""
    arr = np.ascontiguousarray(arr)
    return hashlib.sha256(arr.astype(arr.dtype.newbyteorder("<")).tobytes()).hexdigest()


def shuffle_bytes(arr):
    """The HDF5 shuffle filter's output: byte k of every element grouped together."""
    b = np.ascontiguousarray(arr).view(np.uint8).reshape(-1, arr.dtype.itemsize)
    return b.T.tobytes()


# ---------------------------------------------------------------------------
# Synthetic detector data
# ---------------------------------------------------------------------------

def pixel_mask():
    """NXmx/EIGER pixel mask: bit 0 gap, bit 1 dead, bit 2 under-responding,
    bit 3 over-responding, bit 4 noisy."""
    m = np.zeros((NY, NX), dtype="<u4")
    m[:, 31:33] |= 1    # vertical chip gap
    m[23:25, :] |= 1    # horizontal module gap
    m[5, 7] |= 2
    m[40, 50] |= 2
    m[30, 3] |= 4
    m[12, 44] |= 8
    m[10, 60] |= 16
    return m


def synth_frames(n, dtype, seed, mask):
    """Low background with a few Bragg-like spots; gap pixels hold dtype max,
    dead pixels 0, as an EIGER writes them."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    img = rng.poisson(0.4, (n, NY, NX)).astype(np.int64)
    yy, xx = np.mgrid[0:NY, 0:NX]
    for k in range(n):
        for _ in range(4):
            cy, cx = rng.uniform(2, NY - 2), rng.uniform(2, NX - 2)
            peak = rng.uniform(50, 3000)
            img[k] += (peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 1.5)).astype(np.int64)
    img = np.clip(img, 0, top - 1).astype(dtype)
    img[:, (mask & 1) != 0] = top
    img[:, (mask & 2) != 0] = 0
    return img


# ---------------------------------------------------------------------------
# nxmx_small_<libver>: one content, every format generation
# ---------------------------------------------------------------------------

def write_nxmx_small(out):
    mask = pixel_mask()
    frames = synth_frames(3, "<u2", 1, mask)
    for libver in ["earliest", "v108", "v110", "v112", "latest"]:
        with create_file(os.path.join(out, f"nxmx_small_{libver}.h5"), libver) as f:
            f.attrs["file_name"] = f"nxmx_small_{libver}.h5"
            entry = nxgroup(f, "entry", "NXentry")
            dset(entry, "definition", np.bytes_("NXmx"))            # fixed-length, NULLPAD
            dset(entry, "start_time", "2024-05-01T12:00:00.000Z")   # vlen UTF-8 scalar
            inst = nxgroup(entry, "instrument", "NXinstrument")
            det = nxgroup(inst, "detector", "NXdetector")
            for key, val in [("x_pixel_size", 7.5e-05), ("y_pixel_size", 7.5e-05)]:
                dset(det, key, np.float32(val)).attrs["units"] = "m"
            dset(det, "count_time", np.float64(0.1)).attrs["units"] = "s"
            dset(det, "bit_depth_readout", np.int32(16))
            dset(det, "saturation_value", np.int32(65534))
            fixed_str_dset(det, "sensor_material", "Si")            # fixed-length, NULLTERM
            dset(det, "pixel_mask", mask)                            # 2-D contiguous
            # Compact layout: the raw data sits in the object header.
            dcpl = new_dcpl()
            dcpl.set_layout(h5d.COMPACT)
            ll_dset(det, "module_size", dcpl, np.array([NY, NX], dtype="<i4"))
            dset(det, "threshold_energy", np.array([6000.0, 12000.0], dtype="<f8"))
            data = nxgroup(entry, "data", "NXdata")
            data.attrs["signal"] = "data"
            dset(data, "data", frames, chunks=(1, NY, NX), **BSLZ4)
            sample = nxgroup(entry, "sample", "NXsample")
            gonio = nxgroup(sample, "goniometer", "NXtransformations")
            om = dset(gonio, "omega", np.arange(3, dtype="<f8") * 0.1)
            om.attrs["units"] = "deg"
            om.attrs["vector"] = np.array([-1.0, 0.0, 0.0])
            dset(entry, "notes", np.array(["first", "second", "Ångström"], dtype=h5py.string_dtype()))


# ---------------------------------------------------------------------------
# superblock1: libver earliest with a non-default istore_k (sym_k alone: still v0)
# ---------------------------------------------------------------------------

def write_superblock1(out):
    # istore_k=4: chunk B-tree nodes hold at most 8 children, so 40 chunks
    # already need a two-level tree; sym_k=(8, 2): group B-tree nodes hold 16
    # children, symbol-table leaves (SNODs) 4 entries.
    with create_file(os.path.join(out, "superblock1.h5"), "earliest", istore_k=4, sym_k=(8, 2)) as f:
        data = np.arange(40 * 6, dtype="<i2").reshape(40, 6)
        dset(f, "chunked", data, chunks=(1, 6))
        g = f.create_group("group")
        for i in range(60):   # > 16 SNODs of 4 entries: two-level group B-tree
            dset(g, f"m{i:02d}", np.int16(i))


# ---------------------------------------------------------------------------
# swmr_open: a copy taken while the SWMR writer still has the file open
# ---------------------------------------------------------------------------

def write_swmr(out):
    mask = pixel_mask()
    frames = synth_frames(4, "<u2", 2, mask)
    with tempfile.TemporaryDirectory() as tmp:
        live = os.path.join(tmp, "swmr_live.h5")
        f = h5py.File(live, "w", libver="latest")
        entry = nxgroup(f, "entry", "NXentry")
        data = nxgroup(entry, "data", "NXdata")
        ds = dset(data, "data", shape=(0, NY, NX), maxshape=(None, NY, NX), dtype="<u2",
                  chunks=(1, NY, NX), **BSLZ4)
        nums = dset(data, "frame_number", shape=(0,), maxshape=(None,), dtype="<u4", chunks=(16,))
        f.swmr_mode = True
        for k in range(len(frames)):
            ds.resize((k + 1, NY, NX))
            ds[k] = frames[k]
            nums.resize((k + 1,))
            nums[k] = k + 1
            ds.flush()
            nums.flush()
        f.flush()
        # Copy while the writer is open: the superblock still says "open for
        # SWMR write" (status flags 0x05), which a reader must tolerate.
        shutil.copyfile(live, os.path.join(out, "swmr_open.h5"))
        f.close()


def write_userblock(out):
    """A user block before the superblock: every address is relative to the superblock."""
    frames = synth_frames(3, "<u2", 3, pixel_mask())
    for libver, size in (("earliest", 512), ("latest", 1024)):
        with h5py.File(os.path.join(out, f"userblock_{libver}.h5"), "w", libver=libver,
                       userblock_size=size) as f:
            entry = nxgroup(f, "entry", "NXentry")
            dset(entry, "frames", frames, chunks=(1, NY, NX), **BSLZ4)
            dset(entry, "contiguous", np.arange(20, dtype="<i4"))
        # Something a user block might hold; HDF5 ignores it.
        with open(os.path.join(out, f"userblock_{libver}.h5"), "r+b") as raw:
            raw.write(b"hdrmx corpus user block\n")


# ---------------------------------------------------------------------------
# groups_*: group storage generations and a 2000-member group
# ---------------------------------------------------------------------------

def big_group(f, name, n=2000):
    """n members.  To keep the file small most are extra hard links to one empty
    group (the group index is what we test, not n separate objects); every
    250th member is its own scalar dataset so dataset lookup is tested too."""
    target = f.create_group("big_target")
    g = f.create_group(name)
    for i in range(n):
        key = f"m{i:04d}"
        if i % 250 == 0:
            dset(g, key, np.int32(i))
        else:
            g[key] = target


def write_groups(out):
    with create_file(os.path.join(out, "groups_earliest.h5"), "earliest") as f:
        # Nested symbol-table groups (v1 B-tree + local heap + SNOD each).
        a = nxgroup(f, "a", "NXentry")
        b = a.create_group("b")
        c = b.create_group("c")
        dset(c, "leaf", np.arange(5, dtype="<i4"))
        dset(a, "x", np.float64(2.5))
        # 2000 members: a multi-level group B-tree over 250 SNODs.
        big_group(f, "big")
    with create_file(os.path.join(out, "groups_latest.h5"), "latest") as f:
        # <= 8 links: link messages in the group's object header.
        comp = nxgroup(f, "compact", "NXcollection")
        comp.create_group("g1")
        comp.create_group("g2")
        for i in range(3):
            dset(comp, f"d{i}", np.int32(i))
        # 40 links: dense storage (fractal heap + v2 B-tree name index).
        dense = f.create_group("dense")
        for i in range(40):
            if i % 4 == 0:
                dense.create_group(f"sub{i:02d}")
            else:
                dset(dense, f"val{i:02d}", np.int64(i * 1000))
        # Dense with creation order tracked and indexed (second v2 B-tree),
        # inserted in non-alphabetical order.
        ordered = f.create_group("dense_ordered", track_order=True)
        for i in [7, 3, 15, 0, 11, 19, 1, 8, 14, 5, 17, 2, 10, 13, 4, 18, 6, 9, 16, 12]:
            dset(ordered, f"item{i:02d}", np.uint8(i))
        big_group(f, "big")


# ---------------------------------------------------------------------------
# links_*: hard, soft, dangling and external links
# ---------------------------------------------------------------------------

def write_links(out):
    with create_file(os.path.join(out, "links_target.h5"), "earliest") as f:
        dset(f, "data", np.arange(10, dtype="<i4") * 3)
        g = nxgroup(f, "group", "NXcollection")
        dset(g, "value", np.float64(42.0))
    mask = pixel_mask()
    with create_file(os.path.join(out, "sub", "links_sub_target.h5"), "latest") as f:
        dset(f, "frames", synth_frames(3, "<u2", 3, mask), chunks=(1, NY, NX), compression="gzip")
        # Resolved relative to *this* file's directory (sub/), so "../" is needed.
        f["back"] = h5py.ExternalLink("../links_target.h5", "/data")

    for libver in ["earliest", "latest"]:
        with create_file(os.path.join(out, f"links_{libver}.h5"), libver) as f:
            data = dset(f, "data", np.arange(6, dtype="<u2") + 100)
            data.attrs["long_name"] = "linked data"
            grp = nxgroup(f, "group", "NXcollection")
            dset(grp, "inner", np.arange(4, dtype="<f4"))
            f["hard_alias"] = data                           # second hard link, same object
            f["soft_to_data"] = h5py.SoftLink("/data")
            f["soft_to_group"] = h5py.SoftLink("/group")
            grp["soft_relative"] = h5py.SoftLink("inner")    # relative to /group
            f["dangling"] = h5py.SoftLink("/does/not/exist")
            # External links live in their own group: in the earliest format
            # they cannot be symbol-table entries, so HDF5 stores that group
            # with link messages instead (checked by check_corpus.py).
            ext = f.create_group("external")
            ext["ext_data"] = h5py.ExternalLink("links_target.h5", "/data")
            ext["ext_group"] = h5py.ExternalLink("links_target.h5", "/group")
            ext["ext_sub"] = h5py.ExternalLink("sub/links_sub_target.h5", "/frames")
            ext["ext_chain"] = h5py.ExternalLink("sub/links_sub_target.h5", "/back")
            ext["ext_missing"] = h5py.ExternalLink("no_such_file.h5", "/data")


# ---------------------------------------------------------------------------
# attributes_*: value types, compact/dense storage, header continuations
# ---------------------------------------------------------------------------

def typed_attributes(obj):
    """One attribute of every kind the reader has to decode."""
    a = obj.attrs
    a["NX_class"] = "NXcollection"                                   # vlen UTF-8
    a["vlen_utf8_text"] = "Ångström λ=0.9793 Å µm ✓ 🎉"             # non-ASCII, 4-byte UTF-8
    a.create("vlen_ascii", "plain ascii", dtype=h5py.string_dtype("ascii"))
    a["fixed_bytes"] = np.bytes_("NXmx")                             # fixed 4, NULLPAD
    a.create("fixed_ascii10", "abc", dtype=h5py.string_dtype("ascii", 10))  # NULLPAD, padded
    a.create("fixed_utf8", "Å5".encode(), dtype=h5py.string_dtype("utf-8", 8))
    fixed_str_attr(obj, "fixed_nullterm", "Si")                      # EIGER-style NULLTERM
    a["int8"] = np.int8(-128)
    a["int16"] = np.int16(-32768)
    a["int32"] = np.int32(-2147483648)
    a["int64"] = np.int64(-9223372036854775808)
    a["uint8"] = np.uint8(255)
    a["uint16"] = np.uint16(65535)
    a["uint32"] = np.uint32(4294967295)
    a["uint64"] = np.uint64(18446744073709551615)
    a["float32"] = np.float32(0.1)             # manifest holds the float32 value exactly
    a["float64"] = np.float64(-1.25e-300)
    a["array_i4"] = np.array([1, 2, 3], dtype="<i4")
    a["array_f8_2d"] = np.array([[1.5, -2.0, 3.25], [0.0, 1e10, -7.0]], dtype="<f8")
    a["array_u1"] = np.arange(5, dtype="u1")
    a["array_vlen_str"] = np.array(["a", "bb", "ççç"], dtype=h5py.string_dtype())
    a["array_fixed_str"] = np.array([b"x", b"yy", b"zzz"], dtype="S3")
    a["be_int32"] = np.array(-123456, dtype=">i4")
    a["be_uint16_array"] = np.array([1, 256, 65535], dtype=">u2")
    a["be_float64"] = np.array(6.02214076e23, dtype=">f8")
    a["be_float32_2d"] = np.array([[0.5, 1.5], [2.5, -3.5]], dtype=">f4")


def write_attributes(out):
    for libver in ["earliest", "latest"]:
        with create_file(os.path.join(out, f"attributes_{libver}.h5"), libver) as f:
            f.attrs["root_attr"] = "on the root group"
            typed_attributes(f.create_group("typed"))   # 28 attributes: dense in latest
            # <= 8 attributes of mixed kinds: compact attribute messages in latest too.
            mix = f.create_group("compact_mix")
            mix.attrs["NX_class"] = "NXcollection"
            mix.attrs["text"] = "Ångström"
            mix.attrs["fixed"] = np.bytes_("fixed")
            fixed_str_attr(mix, "nullterm", "Si")
            mix.attrs["be_int16"] = np.array(-2, dtype=">i2")
            mix.attrs["vector"] = np.array([0.0, -1.0, 0.0])
            mix.attrs["uint64"] = np.uint64(2**63 + 5)
            mix.attrs["strings"] = np.array(["p", "q"], dtype=h5py.string_dtype())
            ds = dset(f, "typed_dataset", np.arange(4, dtype="<i4"))
            typed_attributes(ds)
            # 40 attributes: dense attribute storage (fractal heap + v2 B-tree)
            # in the latest format; a long continuation chain in the earliest.
            many = f.create_group("many")
            for i in range(40):
                many.attrs[f"a{i:02d}"] = np.int32(i) if i % 2 else f"value {i}"
            # Attributes added after creation overflow the first object header
            # chunk into continuation blocks.  Latest: stay at <= 8 attributes
            # (more would switch to dense storage) but make them large.
            cont = dset(f, "continued", np.arange(16, dtype="<u1").reshape(4, 4))
            # Something allocated right after the header, so HDF5 cannot just
            # grow the header chunk in place at the end of the file.
            dset(f, "after_continued", np.arange(3, dtype="<u1"))
            n = 8 if libver == "latest" else 24
            for i in range(n):
                cont.attrs[f"note{i:02d}"] = f"attribute {i} added later " + "x" * 80


# ---------------------------------------------------------------------------
# dtypes_*: numeric types in both byte orders, strings, dataspaces
# ---------------------------------------------------------------------------

def numeric_samples(code):
    """Seven values spanning the type's range (no NaN/inf)."""
    dt = np.dtype(code)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        vals = [info.min, info.min + 1, 0, 1, 2, info.max - 1, info.max]
        return np.array(vals, dtype=dt)
    info = np.finfo(dt)
    return np.array([0.0, -0.0, 1.5, -2.25, info.tiny, info.max, -info.max], dtype=dt)


def write_dtypes(out):
    codes = ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8"]
    for libver in ["earliest", "latest"]:
        with create_file(os.path.join(out, f"dtypes_{libver}.h5"), libver) as f:
            for order, gname in [("<", "le"), (">", "be")]:
                g = f.create_group(f"numeric/{gname}")
                for c in codes:
                    dset(g, c, numeric_samples(order + c).astype(order + c))
            # Byte order and filters together: shuffle works on stored (BE) bytes.
            rng = np.random.default_rng(4)
            dset(f, "numeric/be_i4_shuffle_deflate", rng.integers(-5000, 5000, (12, 10)).astype(">i4"),
                 chunks=(4, 5), shuffle=True, compression="gzip")
            dset(f, "numeric/be_f8_chunked", np.linspace(-1, 1, 30).astype(">f8").reshape(5, 6),
                 chunks=(2, 4))

            sp = f.create_group("space")
            dset(sp, "scalar_f8", np.float64(3.141592653589793))
            dset(sp, "scalar_u1", np.uint8(7))
            dset(sp, "one_d", np.arange(17, dtype="<i8"))
            dset(sp, "three_d", np.arange(24, dtype="<i2").reshape(2, 3, 4))
            dset(sp, "unlimited_1d", np.arange(12, dtype="<f4"), maxshape=(None,), chunks=(5,))
            dset(sp, "unlimited_3d", np.arange(60, dtype="<u2").reshape(3, 4, 5),
                 maxshape=(None, 4, None), chunks=(2, 4, 3))
            dset(sp, "empty_unlimited", shape=(0, 4), maxshape=(None, 4), dtype="<i4", chunks=(8, 4))

            st = f.create_group("strings")
            dset(st, "fixed_nullpad_scalar", np.bytes_("NXmx"))
            fixed_str_dset(st, "fixed_nullterm_scalar", "CdTe")
            fixed_str_dset(st, "fixed_nullterm_padded", "Si", size=8)
            fixed_str_dset(st, "fixed_spacepad_scalar", "GaAs", pad=h5t.STR_SPACEPAD, size=10)
            dset(st, "fixed_array", np.array([b"Si", b"CdTe", b"GaAs"], dtype="S4"))
            dset(st, "vlen_utf8_scalar", "Ångström ✓")
            dset(st, "vlen_ascii_scalar", "ascii only", dtype=h5py.string_dtype("ascii"))
            dset(st, "vlen_utf8_array", np.array(["α", "beta", "γγ", ""], dtype=h5py.string_dtype()))
            dset(st, "vlen_ascii_array", np.array(["one", "two"], dtype=h5py.string_dtype("ascii")))
            dset(st, "vlen_utf8_chunked", np.array([f"line {i} ✓" for i in range(10)],
                                                   dtype=h5py.string_dtype()), chunks=(4,))


# ---------------------------------------------------------------------------
# layouts_*: storage layouts and every chunk index
# ---------------------------------------------------------------------------

def write_skipped_filter_chunks(f, name):
    """shuffle+deflate dataset where some chunks were stored with filters
    skipped (filter_mask bits set).  HDF5's deflate never fails on incompressible
    data (it stores the larger output), so the natural "optional filter failed"
    case cannot be produced; direct chunk writes record the same on-disk state."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 1000, (4, 16, 16)).astype("<u2")
    ds = dset(f, name, shape=data.shape, dtype="<u2", chunks=(1, 16, 16), shuffle=True,
              compression="gzip")
    ds[0:2] = data[0:2]                                                    # mask 0b00
    ds.id.write_direct_chunk((2, 0, 0), shuffle_bytes(data[2]), filter_mask=0b10)  # deflate skipped
    ds.id.write_direct_chunk((3, 0, 0), data[3].tobytes(), filter_mask=0b11)      # both skipped


def layouts_common(f, mask):
    """Datasets that look the same in both formats (the chunk index differs)."""
    dset(f, "contiguous", synth_frames(1, "<u2", 6, mask)[0])
    dcpl = new_dcpl()
    dcpl.set_layout(h5d.COMPACT)
    ll_dset(f, "compact", dcpl, np.arange(10, dtype="<i4") * -7)
    # Sub-frame tiles: 6 frames x 3 x 4 tiles = 72 chunks (> 64: a v1 B-tree
    # needs more than one node with the default istore_k=32).
    dset(f, "tiles", synth_frames(6, "<u2", 7, mask), chunks=(1, 16, 16))
    # Unallocated chunks read as the fill value.
    ds = dset(f, "fill_unallocated", shape=(6, 16, 16), dtype="<u2", chunks=(1, 16, 16),
              fillvalue=0xBEEF)
    for k in (0, 2, 5):
        ds[k] = np.full((16, 16), k * 100 + 1, dtype="<u2")
    # Partial edge chunks in all three dimensions.
    dset(f, "edge_chunks", np.arange(5 * 20 * 30, dtype="<i4").reshape(5, 20, 30), chunks=(2, 8, 16))
    # Several frames per chunk, unfiltered and bslz4.
    multi = synth_frames(8, "<u2", 8, mask)
    dset(f, "multi_frame", multi, chunks=(4, NY, NX))
    dset(f, "multi_frame_bslz4", multi, chunks=(4, NY, NX), **BSLZ4)
    write_skipped_filter_chunks(f, "skipped_filters")


def chunk_index_datasets(f, mask):
    """One dataset per v4-layout chunk index (libver >= v110).  HDF5 picks the
    index from the dataspace and the DCPL; check_corpus.py confirms each."""
    frames = synth_frames(4, "<u2", 9, mask)[:, :16, :16]
    # Single chunk index: one chunk is the whole (fixed-size) dataset.
    dset(f, "single_chunk", frames, chunks=frames.shape)
    dset(f, "single_chunk_filtered", frames, chunks=frames.shape, shuffle=True, compression="gzip")
    # Implicit index: no filters, fixed dims, space allocated at creation.
    dcpl = new_dcpl()
    dcpl.set_chunk((1, 16, 16))
    dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_value(np.array(3, dtype="<u2"))
    ds = ll_dset(f, "implicit", dcpl, dtype="<u2", shape=(6, 16, 16))
    for k in (0, 1, 4):
        ds[k] = frames[k % 4]
    # Fixed array: unpaged (72 filtered tiles; "tiles" is the unfiltered one)
    # and paged (> 1024 chunks).
    dset(f, "farray_filtered", synth_frames(6, "<u2", 12, mask), chunks=(1, 16, 16), **BSLZ4)
    dset(f, "farray_paged", (np.arange(1500) % 251).astype("u1"), chunks=(1,))
    # 2100 chunks = 3 pages of <= 1024; page 2 is never written, so its
    # page-init bit is clear and its (zeroed) entries must not be trusted.
    ds = dset(f, "farray_paged_sparse", shape=(2100,), dtype="<u2", chunks=(1,), fillvalue=9)
    ds[0:500] = np.arange(500, dtype="<u2")
    ds[2050:2100] = np.arange(50, dtype="<u2") + 1000
    # Extensible array (one unlimited dim).  Small and filtered:
    dset(f, "earray_small", frames[:3], maxshape=(None, 16, 16), chunks=(1, 16, 16),
         compression="gzip")
    # Large: super blocks, data blocks and (from element 131060 on, where
    # data blocks hold 2048 > 1024 elements) paged data blocks.  Written
    # sparsely so the corpus stays small: chunks 0..2999 and the tail.
    n = 131200
    ds = dset(f, "earray_big", shape=(n,), maxshape=(None,), dtype="u1", chunks=(1,), fillvalue=200)
    ds[0:3000] = (np.arange(3000) % 199).astype("u1")
    ds[131100:n] = (np.arange(n - 131100) % 97).astype("u1")
    dset(f, "earray_edge", np.arange(5 * 20 * 30, dtype="<i4").reshape(5, 20, 30),
         maxshape=(None, 20, 30), chunks=(2, 8, 16))
    # Version-2 B-tree (two unlimited dims), 300 chunks: depth >= 1.
    grid = np.arange(40 * 30, dtype="<u2").reshape(40, 30)
    dset(f, "btree_v2", grid, maxshape=(None, None), chunks=(2, 2))
    dset(f, "btree_v2_filtered", grid, maxshape=(None, None), chunks=(2, 2), compression="gzip")
    # Partial edge chunks stored *unfiltered* (H5Pset_chunk_opts, layout
    # flag bit 0) while whole chunks are deflated.
    dcpl = new_dcpl()
    dcpl.set_chunk((2, 8, 16))
    dcpl.set_deflate(6)
    assert hdf5_lib().H5Pset_chunk_opts(dcpl.id, 0x0002) >= 0  # H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS
    ll_dset(f, "edge_chunks_unfiltered_partial", dcpl,
            np.arange(5 * 20 * 30, dtype="<i4").reshape(5, 20, 30))


def write_layouts(out):
    mask = pixel_mask()
    with create_file(os.path.join(out, "layouts_earliest.h5"), "earliest") as f:
        layouts_common(f, mask)
        # 200 chunks: v1 B-tree with several leaf nodes.
        dset(f, "btree_v1_many", np.arange(200 * 3, dtype="<u2").reshape(200, 3), chunks=(1, 3))
        dset(f, "btree_v1_unlimited", np.arange(100, dtype="<i2").reshape(25, 4),
             maxshape=(None, None), chunks=(2, 2), compression="gzip")
    # v110: layout message version 4.  latest (= v200 with HDF5 2.0): filtered
    # chunked datasets get layout version 5, whose chunk indices store each
    # filtered chunk's size in a full 8-byte field (v4: as few bytes as the
    # unfiltered chunk size needs).  Unfiltered ones stay at version 4.
    with create_file(os.path.join(out, "layouts_v110.h5"), "v110") as f:
        chunk_index_datasets(f, mask)
        write_skipped_filter_chunks(f, "skipped_filters")
    with create_file(os.path.join(out, "layouts_latest.h5"), "latest") as f:
        layouts_common(f, mask)
        chunk_index_datasets(f, mask)


# ---------------------------------------------------------------------------
# filters_*: filter pipelines
# ---------------------------------------------------------------------------

def write_filters(out):
    mask = pixel_mask()
    f16 = synth_frames(3, "<u2", 10, mask)
    f32 = synth_frames(3, "<u4", 11, mask)
    ch = (1, NY, NX)
    for libver in ["earliest", "latest"]:
        name = f"filters_{libver}.h5"
        with create_file(os.path.join(out, name), libver) as f:
            dset(f, "bslz4", f16, chunks=ch, **hdf5plugin.Bitshuffle(cname="lz4"))
            dset(f, "bslz4_u32", f32, chunks=ch, **hdf5plugin.Bitshuffle(cname="lz4"))
            dset(f, "bslz4_block256", f32, chunks=ch, **hdf5plugin.Bitshuffle(nelems=256, cname="lz4"))
            dset(f, "bitshuffle_zstd", f16, chunks=ch, **hdf5plugin.Bitshuffle(cname="zstd"))
            dset(f, "bitshuffle_none", f16, chunks=ch, **hdf5plugin.Bitshuffle(cname="none"))
            dset(f, "lz4", f16, chunks=ch, **hdf5plugin.LZ4())
            dset(f, "lz4_blocks1k", f32, chunks=ch, **hdf5plugin.LZ4(nbytes=1024))
            dset(f, "zstd", f16, chunks=ch, **hdf5plugin.Zstd())
            dset(f, "deflate", f16, chunks=ch, compression="gzip", compression_opts=4)
            dset(f, "shuffle_deflate", f32, chunks=ch, shuffle=True, compression="gzip")
            dset(f, "shuffle_deflate_be", f32.astype(">u4"), chunks=ch, shuffle=True, compression="gzip")
            dset(f, "fletcher32", f16, chunks=ch, fletcher32=True)
            dset(f, "shuffle_deflate_fletcher32", f16, chunks=ch, shuffle=True, compression="gzip",
                 fletcher32=True)
            dset(f, "bslz4_fletcher32", f16, chunks=ch, fletcher32=True, **hdf5plugin.Bitshuffle(cname="lz4"))
            # Non-default orders, only possible through the low-level DCPL.
            dcpl = new_dcpl()
            dcpl.set_chunk(ch)
            dcpl.set_deflate(5)
            dcpl.set_shuffle()
            ll_dset(f, "deflate_then_shuffle", dcpl, f16)
            dcpl = new_dcpl()
            dcpl.set_chunk(ch)
            dcpl.set_fletcher32()
            dcpl.set_shuffle()
            dcpl.set_deflate(1)
            ll_dset(f, "fletcher32_shuffle_deflate", dcpl, f32)
            # Filters the reader does not implement: reading must fail cleanly.
            dset(f, "unsupported_lzf", f16, chunks=ch, compression="lzf")
            dset(f, "unsupported_blosc", f16, chunks=ch, **hdf5plugin.Blosc())
        EXPECTED_ERRORS.append({"file": name, "path": "/unsupported_lzf", "frame": None,
                                "why": "unsupported filter 32000 (LZF)", "mentions": "32000"})
        EXPECTED_ERRORS.append({"file": name, "path": "/unsupported_blosc", "frame": None,
                                "why": "unsupported filter 32001 (Blosc)", "mentions": "32001"})


# ---------------------------------------------------------------------------
# NXmx / EIGER masters
# ---------------------------------------------------------------------------

class Style:
    """How a particular writer spells the metadata."""

    def __init__(self, name, float_dtype, fixed_strings, mask_in_detector, mask_in_specific=True):
        self.name = name
        self.float_dtype = float_dtype            # EIGER writes float32, DLS float64
        self.fixed_strings = fixed_strings        # EIGER: fixed NULLTERM; DLS: vlen UTF-8
        self.mask_in_detector = mask_in_detector  # /entry/instrument/detector/pixel_mask
        self.mask_in_specific = mask_in_specific  # .../detectorSpecific/pixel_mask


EIGER1 = Style("eiger1", "<f4", True, mask_in_detector=False)
EIGER2 = Style("eiger2", "<f4", True, mask_in_detector=True)
DLS = Style("dls", "<f8", False, mask_in_detector=True)


def write_nxmx_master_metadata(f, style, dtype, nimages, ntrigger=1):
    """/entry, /entry/instrument/detector (+ detectorSpecific), /entry/data.
    Returns (data group, master info for the manifest)."""
    mask = pixel_mask()
    bits = np.dtype(dtype).itemsize * 8
    saturation = 40000 if bits == 16 else 1000000
    fdt = np.dtype(style.float_dtype)

    def text(parent, name, value):
        if style.fixed_strings:
            return fixed_str_dset(parent, name, value)
        return dset(parent, name, value)

    def units(ds, u):
        if style.fixed_strings:
            fixed_str_attr(ds, "units", u)
        else:
            ds.attrs["units"] = u

    def number(parent, name, value, dt, unit=None):
        ds = dset(parent, name, np.array(value, dtype=dt))
        if unit:
            units(ds, unit)
        return ds

    entry = nxgroup(f, "entry", "NXentry")
    text(entry, "definition", "NXmx")
    inst = nxgroup(entry, "instrument", "NXinstrument")
    det = nxgroup(inst, "detector", "NXdetector")
    number(det, "x_pixel_size", 7.5e-05, fdt, "m")
    number(det, "y_pixel_size", 7.5e-05, fdt, "m")
    number(det, "count_time", 0.0099999, fdt, "s")
    number(det, "frame_time", 0.01, fdt, "s")
    number(det, "beam_center_x", 31.5, fdt, "pixel")
    number(det, "beam_center_y", 22.25, fdt, "pixel")
    number(det, "sensor_thickness", 0.00045, fdt, "m")
    number(det, "bit_depth_readout", bits, "<u4")
    number(det, "bit_depth_image", bits, "<u4")
    number(det, "saturation_value", saturation, "<u4")
    text(det, "sensor_material", "Si" if style is not EIGER2 else "CdTe")
    text(det, "description", f"Synthetic EIGER ({style.name}) for the neggia-rs corpus")
    spec = nxgroup(det, "detectorSpecific", "NXcollection")
    number(spec, "nimages", nimages, "<u8")
    number(spec, "ntrigger", ntrigger, "<u8")
    number(spec, "x_pixels_in_detector", NX, "<u4")
    number(spec, "y_pixels_in_detector", NY, "<u4")
    number(spec, "saturation_value", saturation, "<u4")
    # pixel mask: uint32, chunked, shuffle+deflate (as the DECTRIS FileWriter).
    mask_path = None
    if style.mask_in_specific:
        dset(spec, "pixel_mask", mask, chunks=(NY, NX), shuffle=True, compression="gzip")
        mask_path = "/entry/instrument/detector/detectorSpecific/pixel_mask"
    if style.mask_in_detector:
        dset(det, "pixel_mask", mask, chunks=(NY, NX), shuffle=True, compression="gzip")
        mask_path = "/entry/instrument/detector/pixel_mask"
    sample = nxgroup(entry, "sample", "NXsample")
    gonio = nxgroup(sample, "goniometer", "NXtransformations")
    number(gonio, "omega_range_average", 0.1, fdt, "deg")
    data = nxgroup(entry, "data", "NXdata")
    info = {
        "mask_path": mask_path,
        "mask_sha256": sha256_le(mask),
        "saturation_value": saturation,
        "bit_depth": bits,
        "x_pixel_size": float(np.array(7.5e-05, dtype=fdt)),
        "y_pixel_size": float(np.array(7.5e-05, dtype=fdt)),
    }
    return data, info


MASTERS = {}   # file name -> dict(info..., stack=[dataset paths]) for the manifest


def write_filewriter(out, prefix, style, libver, dtype, per_file, seed):
    """DECTRIS FileWriter layout: the master links /entry/data/data_00000N to
    PREFIX_data_00000N.h5:/entry/data/data."""
    total = sum(per_file)
    frames = synth_frames(total, dtype, seed, pixel_mask())
    first = 0
    for i, n in enumerate(per_file, start=1):
        with create_file(os.path.join(out, f"{prefix}_data_{i:06d}.h5"), libver) as f:
            entry = nxgroup(f, "entry", "NXentry")
            data = nxgroup(entry, "data", "NXdata")
            ds = dset(data, "data", frames[first:first + n], chunks=(1, NY, NX), **BSLZ4)
            ds.attrs["image_nr_low"] = np.uint32(first + 1)
            ds.attrs["image_nr_high"] = np.uint32(first + n)
        first += n
    master = f"{prefix}_master.h5"
    with create_file(os.path.join(out, master), libver) as f:
        data, info = write_nxmx_master_metadata(f, style, dtype, total)
        stack = []
        for i in range(1, len(per_file) + 1):
            data[f"data_{i:06d}"] = h5py.ExternalLink(f"{prefix}_data_{i:06d}.h5", "/entry/data/data")
            stack.append(f"/entry/data/data_{i:06d}")
    MASTERS[master] = dict(info, stack=stack)


def select(space, start, count, stride=None, block=None):
    space.select_hyperslab(tuple(start), tuple(count), stride=None if stride is None else tuple(stride),
                           block=None if block is None else tuple(block))
    return space


def vds_dset(parent, name, dtype, shape, maxshape, mappings, fill=None):
    """Virtual dataset through the low-level API (h5py's VirtualLayout cannot
    switch off timestamps).  mappings: (vsel, file, dataset, src_shape, ssel)
    with vsel/ssel None (all) or dict(start, count, stride, block)."""
    dcpl = new_dcpl()
    for vsel, src_file, src_dset, src_shape, ssel in mappings:
        vspace = h5s.create_simple(shape, maxshape)
        if vsel is not None:
            select(vspace, **vsel)
        sspace = h5s.create_simple(src_shape)
        if ssel is not None:
            select(sspace, **ssel)
        dcpl.set_virtual(vspace, src_file.encode(), src_dset.encode(), sspace)
    if fill is not None:
        dcpl.set_fill_value(np.array(fill, dtype=dtype))
    space = h5s.create_simple(shape, maxshape)
    dsid = h5d.create(parent.id, name.encode(), h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)
    return h5py.Dataset(dsid)


def frames_block(start, n):
    """Selection of n whole frames starting at frame `start`."""
    return dict(start=(start, 0, 0), count=(1, 1, 1), block=(n, NY, NX))


def write_source_files(out, names, frames, per_file, libver, swmr_like=False):
    """DLS/Odin-style data files: frames in /data, one chunk per frame."""
    first = 0
    for name, n in zip(names, per_file):
        with create_file(os.path.join(out, name), libver) as f:
            kw = dict(maxshape=(None, NY, NX)) if swmr_like else {}
            dset(f, "data", frames[first:first + n], chunks=(1, NY, NX), **BSLZ4, **kw)
        first += n


def write_vds_master(out, master, style, libver, dtype, nframes, mappings, ntrigger=1, maxshape=None,
                     shape=None):
    with create_file(os.path.join(out, master), libver) as f:
        data, info = write_nxmx_master_metadata(f, style, dtype, nframes, ntrigger)
        data.attrs["signal"] = "data"
        shape = shape or (nframes, NY, NX)
        vds_dset(data, "data", dtype, shape, maxshape, mappings)
    MASTERS[master] = dict(info, stack=["/entry/data/data"])


def write_dls(out):
    """DLS-style: VDS master over Odin data files; plus the same master as .nxs."""
    per_file = [4, 4, 4]
    frames = synth_frames(sum(per_file), "<u4", 20, pixel_mask())
    names = [f"dls_{i:06d}.h5" for i in range(1, 4)]
    write_source_files(out, names, frames, per_file, "latest", swmr_like=True)
    maps, first = [], 0
    for name, n in zip(names, per_file):
        maps.append((frames_block(first, n), name, "/data", (n, NY, NX), None))
        first += n
    write_vds_master(out, "dls.h5", DLS, "v110", "<u4", sum(per_file), maps)
    shutil.copyfile(os.path.join(out, "dls.h5"), os.path.join(out, "dls.nxs"))
    MASTERS["dls.nxs"] = MASTERS["dls.h5"]


def write_inverse_beam(out):
    """Inverse beam: one acquisition in wedges of 5 frames over two 20-frame
    data files; master A takes frames 0-4, 10-14 of each file, master B 5-9,
    15-19.  The same selections, encoded three ways:
      ib_a_master.h5           latest: one strided regular hyperslab per file
                               (start 0, stride 10, count 2, block 5),
                               selection encoding v3
      ib_a_earliest_master.h5  earliest: the same selection, stored as an
                               explicit block list (hyperslab encoding v1)
      ib_b_master.h5           latest: one mapping per wedge, so source names
                               repeat (HDF5 2.0 then writes VDS heap blob v1
                               with shared-name references)"""
    frames = synth_frames(40, "<u2", 21, pixel_mask())
    names = ["ib_data_000001.h5", "ib_data_000002.h5"]
    write_source_files(out, names, frames, [20, 20], "v108")

    def strided(offset):
        maps = []
        for i, name in enumerate(names):
            ssel = dict(start=(offset, 0, 0), stride=(10, 1, 1), count=(2, 1, 1), block=(5, NY, NX))
            maps.append((frames_block(10 * i, 10), name, "/data", (20, NY, NX), ssel))
        return maps

    write_vds_master(out, "ib_a_master.h5", DLS, "latest", "<u2", 20, strided(0))
    write_vds_master(out, "ib_a_earliest_master.h5", DLS, "earliest", "<u2", 20, strided(0))
    maps = []
    for i, name in enumerate(names):
        for w in range(2):
            maps.append((frames_block(10 * i + 5 * w, 5), name, "/data", (20, NY, NX),
                         frames_block(5 + 10 * w, 5)))
    write_vds_master(out, "ib_b_master.h5", DLS, "latest", "<u2", 20, maps)


def write_multi_trigger(out):
    """Three triggers of 4 frames over data files of 7 and 5 frames: trigger 2
    straddles the file boundary."""
    frames = synth_frames(12, "<u4", 22, pixel_mask())
    names = ["mt_data_000001.h5", "mt_data_000002.h5"]
    sizes = [7, 5]
    write_source_files(out, names, frames, sizes, "latest")
    starts = [0, 7]
    for t in range(3):
        lo, hi = 4 * t, 4 * t + 4
        maps = []
        for name, s0, n in zip(names, starts, sizes):
            a, b = max(lo, s0), min(hi, s0 + n)
            if a < b:
                maps.append((frames_block(a - lo, b - a), name, "/data", (n, NY, NX),
                             frames_block(a - s0, b - a)))
        write_vds_master(out, f"mt_trigger_{t + 1}_master.h5", DLS, "latest", "<u4", 4, maps, ntrigger=3)


def write_samefile_vds(out):
    """VDS whose source file is "." (this file): the two halves of
    /entry/data/raw swapped, plus a VDS with unmapped frames (fill value)."""
    frames = synth_frames(6, "<u2", 23, pixel_mask())
    master = "vds_samefile.h5"
    with create_file(os.path.join(out, master), "latest") as f:
        data, info = write_nxmx_master_metadata(f, DLS, "<u2", 6)
        data.attrs["signal"] = "data"
        dset(data, "raw", frames, chunks=(1, NY, NX), **BSLZ4)
        maps = [(frames_block(0, 3), ".", "/entry/data/raw", (6, NY, NX), frames_block(3, 3)),
                (frames_block(3, 3), ".", "/entry/data/raw", (6, NY, NX), frames_block(0, 3))]
        vds_dset(data, "data", "<u2", (6, NY, NX), None, maps)
        # Frames 0 and 7 are not mapped: they read as the fill value.
        vds_dset(data, "partial", "<u2", (8, NY, NX), None,
                 [(frames_block(1, 6), ".", "/entry/data/raw", (6, NY, NX), None)], fill=0x1234)
    MASTERS[master] = dict(info, stack=["/entry/data/data"])


def write_printf_vds(out):
    """Unlimited VDS with a printf-style source name: block b of 3 frames comes
    from printf_src_<b>.h5 (H5Pset_virtual's %b).  The extent seen by a reader
    depends on which source files exist (here 3 of them -> 9 frames).
    Written twice: latest (selection encoding v3) and v110 (v2)."""
    per = 3
    frames = synth_frames(3 * per, "<u2", 24, pixel_mask())
    names = [f"printf_src_{b}.h5" for b in range(3)]
    write_source_files(out, names, frames, [per] * 3, "latest")
    unl = h5s.UNLIMITED
    vsel = dict(start=(0, 0, 0), count=(unl, 1, 1), stride=(per, 1, 1), block=(per, NY, NX))
    maps = [(vsel, "printf_src_%b.h5", "/data", (per, NY, NX), None)]
    for master, libver in [("vds_printf.h5", "latest"), ("vds_printf_v110.h5", "v110")]:
        write_vds_master(out, master, DLS, libver, "<u2", 3 * per, maps,
                         maxshape=(unl, NY, NX), shape=(0, NY, NX))


def write_missing_source_vds(out):
    """VDS over 3 data files of which the second is deleted after writing.
    HDF5 silently returns the fill value there; the reader must report it."""
    per = 3
    frames = synth_frames(3 * per, "<u4", 25, pixel_mask())
    names = [f"vds_missing_{i:06d}.h5" for i in range(1, 4)]
    write_source_files(out, names, frames, [per] * 3, "earliest")
    maps = [(frames_block(per * i, per), n, "/data", (per, NY, NX), None) for i, n in enumerate(names)]
    master = "vds_missing.h5"
    write_vds_master(out, master, DLS, "earliest", "<u4", 3 * per, maps)
    os.remove(os.path.join(out, names[1]))
    MASTERS[master]["missing_frames"] = list(range(per, 2 * per))
    NO_SHA.add((master, "/entry/data/data"))
    EXPECTED_ERRORS.append({"file": master, "path": "/entry/data/data", "frame": per,
                            "why": "missing VDS source", "mentions": names[1]})


def write_masters(out):
    write_filewriter(out, "eiger1", EIGER1, "earliest", "<u4", [4, 4, 2], seed=30)
    write_filewriter(out, "eiger2", EIGER2, "v110", "<u2", [3, 3, 1], seed=31)
    write_dls(out)
    write_inverse_beam(out)
    write_multi_trigger(out)
    write_samefile_vds(out)
    write_printf_vds(out)
    write_missing_source_vds(out)


# ---------------------------------------------------------------------------
# Manifest: what h5py reads back
# ---------------------------------------------------------------------------

def to_json(value):
    """Attribute / string values as JSON-native types; bytes decoded."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [to_json(v) for v in value.tolist()] if value.ndim == 1 else \
                [to_json(np.array(row, dtype=value.dtype)) for row in value]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def dataset_entry(fname, path, ds, via=None):
    dcpl = ds.id.get_create_plist()
    layout = {h5d.COMPACT: "compact", h5d.CONTIGUOUS: "contiguous", h5d.CHUNKED: "chunked",
              h5d.VIRTUAL: "virtual"}[dcpl.get_layout()]
    e = {
        "path": path,
        "shape": list(ds.shape),
        "dtype": ds.dtype.str,
        "layout": layout,
        "chunks": list(ds.chunks) if ds.chunks else None,
        "filters": [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())],
    }
    if via:
        e["via"] = via
    if h5py.check_string_dtype(ds.dtype) is not None:
        e["value"] = to_json(ds.asstr()[()] if ds.dtype.kind == "O" else ds[()])
    elif (fname, path) in NO_SHA:
        e["sha256"] = None
    else:
        e["sha256"] = sha256_le(ds[()])
    if dcpl.fill_value_defined() == h5d.FILL_VALUE_USER_DEFINED and ds.dtype.kind in "iuf":
        buf = np.zeros((1,), dtype=ds.dtype)
        dcpl.get_fill_value(buf)
        e["fill"] = buf[0].item()
    return e


def attribute_entries(path, obj):
    return [{"path": path, "name": name, "value": to_json(obj.attrs[name])}
            for name in sorted(obj.attrs.keys())]


def describe_file(out, rel):
    path = os.path.join(out, rel)
    with open(path, "rb") as fh:
        data = fh.read()
    # The superblock sits at 0, or after a user block at 512, 1024, 2048, ...
    at = 0
    while data[at:at + 8] != b"\x89HDF\r\n\x1a\n":
        at = 512 if at == 0 else 2 * at
    head = data[at:at + 16]
    sb = head[8]
    # A file flagged open for writing (swmr_open.h5) only opens in SWMR-read mode.
    still_open = sb >= 2 and head[11] != 0
    f = h5py.File(path, "r", swmr=still_open)
    groups, datasets, attrs = [], [], []
    soft, ext = {}, {}

    def visit(gpath, group, ancestors):
        for name in sorted(group.keys()):
            p = gpath.rstrip("/") + "/" + name
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                ext[p] = [link.filename, link.path]
                try:
                    obj = group[name]
                except (KeyError, OSError):
                    EXPECTED_ERRORS.append({"file": rel, "path": p, "frame": None,
                                            "why": "external link to a missing file",
                                            "mentions": link.filename})
                    continue
                if isinstance(obj, h5py.Dataset):
                    datasets.append(dataset_entry(rel, p, obj, via="external"))
                    attrs.extend(attribute_entries(p, obj))
                continue
            if isinstance(link, h5py.SoftLink):
                soft[p] = link.path
            try:
                obj = group[name]
            except KeyError:                   # dangling soft link
                EXPECTED_ERRORS.append({"file": rel, "path": p, "frame": None,
                                        "why": "dangling soft link", "mentions": link.path})
                continue
            addr = h5py.h5o.get_info(obj.id).addr
            if isinstance(obj, h5py.Group):
                groups.append(p)
                attrs.extend(attribute_entries(p, obj))
                if addr not in ancestors:      # no cycles through soft/hard links
                    visit(p, obj, ancestors | {addr})
            else:
                datasets.append(dataset_entry(rel, p, obj))
                attrs.extend(attribute_entries(p, obj))

    groups.append("/")
    attrs.extend(attribute_entries("/", f))
    visit("/", f, {h5py.h5o.get_info(f.id).addr})
    entry = {
        "file": rel,
        "superblock": sb,
        "groups": sorted(groups),
        "datasets": sorted(datasets, key=lambda d: d["path"]),
        "attributes": sorted(attrs, key=lambda a: (a["path"], a["name"])),
        "soft_links": dict(sorted(soft.items())),
        "external_links": dict(sorted(ext.items())),
    }
    if rel in MASTERS:
        entry["masters"] = master_entry(f, rel)
    f.close()
    return entry


def master_entry(f, rel):
    info = dict(MASTERS[rel])
    stack = info.pop("stack")
    missing = set(info.pop("missing_frames", []))
    frames = []
    for p in stack:
        ds = f[p]
        for k in range(ds.shape[0]):
            frames.append(ds[k])
    first = f[stack[0]]
    return dict(info, frames=len(frames), shape=list(first.shape[1:]), dtype=first.dtype.str,
                data=stack,
                frame_sha256=[None if i in missing else sha256_le(fr) for i, fr in enumerate(frames)])


def write_manifest(out):
    rels = sorted(os.path.relpath(p, out) for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)
                  if p.endswith((".h5", ".nxs")))
    cwd = os.getcwd()
    # Resolve external links and VDS sources from an unrelated directory, so
    # they are found relative to the referring file, never via the cwd.
    with tempfile.TemporaryDirectory() as elsewhere:
        os.chdir(elsewhere)
        try:
            files = [describe_file(os.path.abspath(os.path.join(cwd, out)), r) for r in rels]
        finally:
            os.chdir(cwd)
    errors = sorted(EXPECTED_ERRORS, key=lambda e: (e["file"], e["path"]))
    manifest = {
        "generator": "make_corpus.py",
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
        "hdf5plugin": hdf5plugin.version,
        "numpy": np.__version__,
        "files": files,
        "errors": errors,
    }
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, ensure_ascii=False, sort_keys=False)
        fh.write("\n")


def clean(out):
    """Remove what a previous run wrote (only corpus files, nothing else)."""
    for p in glob.glob(os.path.join(out, "**", "*"), recursive=True):
        if p.endswith((".h5", ".nxs")) or os.path.basename(p) == "manifest.json":
            os.remove(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    args = ap.parse_args()
    out = args.outdir
    os.makedirs(out, exist_ok=True)
    clean(out)
    write_nxmx_small(out)
    write_superblock1(out)
    write_swmr(out)
    write_userblock(out)
    write_groups(out)
    write_links(out)
    write_attributes(out)
    write_dtypes(out)
    write_layouts(out)
    write_filters(out)
    write_masters(out)
    write_manifest(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
