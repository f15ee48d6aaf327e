"""The hdrmx_dials extension (dials-format/) against h5py + hdf5plugin.

Every master of the neggia-rs corpus (DECTRIS FileWriter links, DLS VDS and .nxs, inverse beam,
multi-trigger, printf and same-file VDS): shape, dtype, pixel mask and metadata, and every frame
through read, read_into (into junk) and read_many (shuffled, repeated, negative indices, from
several Python threads at once) equal to h5py's, bit for bit.

The dxtbx convention (open(..., dxtbx=True, bit_depth=b)) against dxtbx's rule, written out here
from dxtbx's FormatNXmx.get_raw_data and dxtbx.nexus._dataset_as_flex (not taken from hdrmx):
the frame as numpy's astype(int32) makes it (uint32 only with bit depth 32, else TypeError),
then top - 1 -> -1 and top - 2 -> -2, with top = 2**31 for bit depth 32 and 2**b otherwise;
no bit depth: values kept. Masters written here cover every integer type, both byte orders,
every chunk path (one chunk per frame through bitshuffle/LZ4, LZ4 and deflate; several frames
per chunk; tiles) and the top values of every bit depth.

Bad input: a missing data file or VDS source, a corrupt or truncated chunk raise
hdrmx_dials.Error (an OSError) naming the file and the frame, and only for those frames (h5py
hands back zeros for the missing VDS source); an unsupported filter raises UnsupportedError;
bad arguments raise IndexError, ValueError or TypeError.

Needs the hdrmx_dials package installed: `cargo xtask test` builds the wheel and installs it.
"""

import json
import pickle
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

hdrmx_dials = pytest.importorskip(
    "hdrmx_dials", reason="hdrmx_dials is not installed (pip install ./dials-format)"
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "files"
DETECTOR = "/entry/instrument/detector"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
MASTERS = {f["file"]: f["masters"] for f in MANIFEST["files"] if f.get("masters")}
# Frames of the VDS source that was deleted after writing (vds_missing_000002.h5).
MISSING = {"vds_missing.h5": {3, 4, 5}}


# ---------------------------------------------------------------- the reference

def dxtbx_rule(raw, bit_depth):
    """What dxtbx's FormatNXmx.get_raw_data returns for integer frames `raw` (any shape)."""
    if raw.dtype.kind == "u" and raw.dtype.itemsize == 4 and bit_depth != 32:
        raise TypeError(f"dxtbx refuses {raw.dtype} without bit depth 32")
    if raw.dtype.itemsize == 8:
        raise TypeError(f"dxtbx refuses {raw.dtype} without bit depth 32")
    v = raw.astype(np.int32)
    if bit_depth:
        top = 2**31 if bit_depth == 32 else 2**bit_depth
        v[v == top - 1] = -1
        v[v == top - 2] = -2
    return v


def h5_stack(path, data_paths):
    with h5py.File(path, "r") as f:
        return np.concatenate([f[p][()] for p in data_paths])


def h5_mask(path, mask_path):
    if mask_path is None:
        return None
    with h5py.File(path, "r") as f:
        return f[mask_path][()].astype(np.uint32)


@pytest.fixture(scope="module")
def reference():
    """name -> (frames as h5py reads them, mask)."""
    return {
        name: (h5_stack(CORPUS / name, m["data"]), h5_mask(CORPUS / name, m["mask_path"]))
        for name, m in MASTERS.items()
    }


def junk(shape, dtype):
    """A writeable array of 0x5A bytes: a read must overwrite every one."""
    dtype = np.dtype(dtype)
    return np.frombuffer(b"\x5a" * (int(np.prod(shape)) * dtype.itemsize), dtype).reshape(shape).copy()


def readable(name, n):
    return [i for i in range(n) if i not in MISSING.get(name, ())]


# ---------------------------------------------------------------- the corpus

@pytest.mark.parametrize("name", sorted(MASTERS))
def test_corpus_master_as_stored(name, reference):
    m = MASTERS[name]
    want, mask = reference[name]
    ds = hdrmx_dials.open(CORPUS / name)
    assert ds.shape == want.shape == (m["frames"], *m["shape"])
    assert len(ds) == m["frames"]
    assert ds.dtype == want.dtype == np.dtype(m["dtype"])
    assert ds.path == CORPUS / name
    if mask is None:
        assert ds.mask is None
    else:
        assert ds.mask.dtype == np.uint32 and not ds.mask.flags.writeable
        np.testing.assert_array_equal(ds.mask, mask)
    md = ds.metadata
    assert md["frames"] == m["frames"] and md["shape"] == tuple(m["shape"])
    assert md["dtype"] == np.dtype(m["dtype"]).name and md["convention"] == "stored"
    assert md["bit_depth"] == m["bit_depth"]
    assert md["saturation_value"] == m["saturation_value"]
    assert md["pixel_size"] == pytest.approx((m["x_pixel_size"], m["y_pixel_size"]))

    ok = readable(name, m["frames"])
    out = junk(want.shape[1:], want.dtype)
    for i in ok:
        frame = ds.read(i)
        assert frame.flags.c_contiguous and frame.flags.writeable and frame.dtype == want.dtype
        np.testing.assert_array_equal(frame, want[i], err_msg=f"{name} frame {i}")
        ds.read_into(i, out)
        np.testing.assert_array_equal(out, want[i], err_msg=f"{name} frame {i} read_into")
    # Shuffled, repeated, and -1 for the last frame.
    order = [int(i) for i in np.random.default_rng(len(name)).permutation(ok)] + [ok[0], -1]
    stack = ds.read_many(order)
    assert stack.shape == (len(order), *want.shape[1:]) and stack.flags.c_contiguous
    np.testing.assert_array_equal(stack, want[order])


@pytest.mark.parametrize("name", sorted(MASTERS))
def test_corpus_master_as_dxtbx_reads_it(name, reference):
    m = MASTERS[name]
    want, _ = reference[name]
    depths = [m["bit_depth"], None] if want.dtype != np.uint32 else [32]
    depths += [16, 8] if want.dtype == np.uint16 else []
    for bit_depth in depths:
        ds = hdrmx_dials.open(CORPUS / name, dxtbx=True, bit_depth=bit_depth)
        assert ds.dtype == np.int32 and ds.metadata["dxtbx_bit_depth"] == bit_depth
        expected = dxtbx_rule(want, bit_depth)
        ok = readable(name, m["frames"])
        np.testing.assert_array_equal(ds.read_many(ok), expected[ok])
        out = junk(want.shape[1:], np.int32)
        for i in ok:
            ds.read_into(i, out)
            np.testing.assert_array_equal(out, expected[i], err_msg=f"{name} {bit_depth} {i}")
    if want.dtype == np.uint32:
        with pytest.raises(TypeError, match="bit depth 32"):
            hdrmx_dials.open(CORPUS / name, dxtbx=True, bit_depth=16)


def test_corpus_gap_pixels_are_minus_one_in_dxtbx():
    """The corpus marks gap pixels with the dtype's maximum: dxtbx sees them as -1."""
    for name in ("dls.h5", "eiger2_master.h5"):
        m = MASTERS[name]
        ds = hdrmx_dials.open(CORPUS / name, dxtbx=True, bit_depth=m["bit_depth"])
        gaps = (ds.mask & 1) != 0
        assert gaps.any() and (ds.read(0)[gaps] == -1).all()


def test_missing_vds_source_is_an_error_not_zeros():
    path = CORPUS / "vds_missing.h5"
    with h5py.File(path) as f:
        assert not f["/entry/data/data"][3].any(), "h5py reads the missing source as zeros"
    for ds in (hdrmx_dials.open(path), hdrmx_dials.open(path, dxtbx=True, bit_depth=32)):
        for i in (3, 4, 5):
            with pytest.raises(hdrmx_dials.Error, match=f"frame {i}:.*vds_missing_000002.h5"):
                ds.read(i)
        with pytest.raises(hdrmx_dials.Error, match="frame 4:.*vds_missing_000002.h5"):
            ds.read_many([0, 1, 4, 3])
        with pytest.raises(OSError, match="frame 5"):
            ds.read_into(5, np.zeros((48, 64), ds.dtype))
        ds.read(6)


def test_threads_share_a_dataset(reference):
    """Python threads reading one Dataset at once (reads release the GIL) get every frame."""
    jobs = [(name, i) for name in MASTERS for i in readable(name, MASTERS[name]["frames"])] * 4
    datasets = {name: hdrmx_dials.open(CORPUS / name) for name in MASTERS}
    with ThreadPoolExecutor(8) as pool:
        frames = list(pool.map(lambda job: datasets[job[0]].read(job[1]), jobs))
    for (name, i), frame in zip(jobs, frames):
        np.testing.assert_array_equal(frame, reference[name][0][i], err_msg=f"{name} {i}")


def test_pickle_reopens(reference):
    for ds in (hdrmx_dials.open(CORPUS / "dls.nxs"),
               hdrmx_dials.open(CORPUS / "dls.nxs", dxtbx=True, bit_depth=32)):
        again = pickle.loads(pickle.dumps(ds))
        assert repr(again) == repr(ds) and again.metadata == ds.metadata
        np.testing.assert_array_equal(again.read(5), ds.read(5))


def test_template_name_opens_the_master(reference):
    ds = hdrmx_dials.open(str(CORPUS / "eiger2_??????.h5"))
    assert ds.path == CORPUS / "eiger2_master.h5"
    np.testing.assert_array_equal(ds.read(6), reference["eiger2_master.h5"][0][6])


def test_entry_points_name_the_format_classes():
    eps = {e.name: e.value for e in entry_points(group="dxtbx.format") if "Hdrmx" in e.name}
    assert eps == {
        "FormatNXmxHdrmx:FormatNXmx": "hdrmx_dials.format:FormatNXmxHdrmx",
        "FormatNXmxEigerFilewriterHdrmx:FormatNXmxEigerFilewriter":
            "hdrmx_dials.format:FormatNXmxEigerFilewriterHdrmx",
    }


# ---------------------------------------------------------------- masters written here

NY, NX = 23, 37   # 851 pixels: bitshuffle's last n mod 8 elements are stored raw


def values(dtype, n, seed):
    """n frames of `dtype`: counts, the extremes, and the top values of every bit depth."""
    rng = np.random.default_rng(seed)
    v = rng.poisson(3.0, (n, NY * NX)).astype(dtype)
    special = [0, 1, -1, -2, -3]
    for b in (1, 8, 12, 16, 31, 32):
        special += [2**b - 1, 2**b - 2, 2**b - 3, 2**b]
    info = np.iinfo(dtype)
    special += [info.max, info.max - 1, info.min]
    # Modulo 2**64, then astype wraps them into the type, as a detector's counter would.
    special = np.array([x % 2**64 for x in special], np.uint64).astype(dtype)
    for k in range(n):
        v[k, rng.choice(NY * NX, len(special), replace=False)] = special
    return v.reshape(n, NY, NX)


def write_master(path, frames, bit_depth=None, mask=None, **dset):
    """A single-file NXmx master: /entry/data/data holds the frames."""
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["definition"] = "NXmx"
        det = f.create_group(DETECTOR)
        det.attrs["NX_class"] = "NXdetector"
        if bit_depth is not None:
            det["bit_depth_readout"] = np.uint32(bit_depth)
        if mask is not None:
            det["pixel_mask"] = mask
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        data.create_dataset("data", data=frames, **dset)
    return path


BSLZ4 = dict(chunks=(1, NY, NX), **hdf5plugin.Bitshuffle(cname="lz4"))
LAYOUTS = {
    "bslz4": BSLZ4,
    "bszstd": dict(chunks=(1, NY, NX), **hdf5plugin.Bitshuffle(cname="zstd")),
    "lz4": dict(chunks=(1, NY, NX), **hdf5plugin.LZ4()),
    "deflate": dict(chunks=(1, NY, NX), compression="gzip", shuffle=True),
    "contiguous": {},
    "two_frames_per_chunk": dict(chunks=(2, NY, NX), **hdf5plugin.Bitshuffle(cname="lz4")),
    "tiles": dict(chunks=(1, 8, 16), **hdf5plugin.Bitshuffle(cname="lz4")),
}
DTYPES = ["<u1", "<u2", "<u4", "<u8", "<i1", "<i2", "<i4", "<i8", ">u2", ">u4", ">i4"]


# Big-endian frames through the general path (deflate, contiguous): hdf5plugin's codecs store
# the bytes as they are, which no detector writes big-endian.
CASES = [(d, l) for d in DTYPES for l in sorted(LAYOUTS)
         if d[0] == "<" or l in ("deflate", "contiguous")]


@pytest.mark.parametrize(("dtype", "layout"), CASES)
def test_written_master(tmp_path, dtype, layout):
    want = values(np.dtype(dtype), 5, seed=sum(map(ord, dtype + layout)))
    path = write_master(tmp_path / "m.h5", want, **LAYOUTS[layout])
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["/entry/data/data"][()], want)
    ds = hdrmx_dials.open(path)
    assert ds.dtype == want.dtype.newbyteorder("=")
    np.testing.assert_array_equal(ds.read_many(range(5)), want)
    out = junk((NY, NX), ds.dtype)
    for i in range(5):
        ds.read_into(i, out)
        np.testing.assert_array_equal(out, want[i])
    for bit_depth in (None, 0, 1, 8, 12, 16, 31, 32):
        try:
            expected = dxtbx_rule(want, bit_depth)
        except TypeError:
            with pytest.raises(TypeError):
                hdrmx_dials.open(path, dxtbx=True, bit_depth=bit_depth)
            continue
        d = hdrmx_dials.open(path, dxtbx=True, bit_depth=bit_depth)
        np.testing.assert_array_equal(d.read_many([4, 0, 2]), expected[[4, 0, 2]],
                                      err_msg=f"{dtype} {layout} bit depth {bit_depth}")
        out = junk((NY, NX), np.int32)
        d.read_into(1, out)
        np.testing.assert_array_equal(out, expected[1])


def test_bit_depth_arguments(tmp_path):
    path = write_master(tmp_path / "m.h5", values(np.uint16, 2, 1), **BSLZ4)
    with pytest.raises(ValueError, match="dxtbx=True"):
        hdrmx_dials.open(path, bit_depth=16)
    with pytest.raises(ValueError, match="bit depth 33"):
        hdrmx_dials.open(path, dxtbx=True, bit_depth=33)
    with pytest.raises(OverflowError):
        hdrmx_dials.open(path, dxtbx=True, bit_depth=-1)


def test_float_frames_are_refused(tmp_path):
    path = write_master(tmp_path / "m.h5", np.zeros((2, NY, NX), np.float32))
    with pytest.raises(hdrmx_dials.Error, match="expected integers"):
        hdrmx_dials.open(path)


def test_bad_arguments():
    ds = hdrmx_dials.open(CORPUS / "eiger2_master.h5")       # 7 frames of 48 x 64 uint16
    for i in (7, -8, 2**40):
        with pytest.raises(IndexError, match=f"frame {i} is out of range.*7 frames"):
            ds.read(i)
    with pytest.raises(IndexError):
        ds.read_many([0, 7])
    with pytest.raises(OverflowError):
        ds.read(2**70)
    np.testing.assert_array_equal(ds.read(-1), ds.read(6))
    assert ds.read_many([]).shape == (0, 48, 64)
    with pytest.raises(TypeError, match="uint16 array of shape"):
        ds.read_into(0, np.zeros((48, 64), np.int32))
    with pytest.raises(TypeError, match="uint16 array"):
        ds.read_into(0, [[0] * 64] * 48)
    with pytest.raises(ValueError, match=r"not of shape \[64, 48\]"):
        ds.read_into(0, np.zeros((64, 48), np.uint16))
    with pytest.raises(ValueError, match="C-contiguous"):
        ds.read_into(0, np.zeros((48, 64), np.uint16, order="F"))
    with pytest.raises(ValueError, match="C-contiguous"):
        ds.read_into(0, np.zeros((48, 128), np.uint16)[:, ::2])
    ro = np.zeros((48, 64), np.uint16)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ds.read_into(0, ro)
    with pytest.raises(ValueError, match="read-only"):
        ds.mask[0, 0] = 1


# ---------------------------------------------------------------- broken files

@pytest.fixture
def corpus_copy(tmp_path):
    """A private copy of the corpus, to break."""
    d = tmp_path / "corpus"
    shutil.copytree(CORPUS, d)
    return d


def test_missing_data_file(corpus_copy, reference):
    (corpus_copy / "eiger1_data_000002.h5").unlink()   # frames 4-7
    want = reference["eiger1_master.h5"][0]
    ds = hdrmx_dials.open(corpus_copy / "eiger1_master.h5")
    for i in range(10):
        if 4 <= i < 8:
            with pytest.raises(hdrmx_dials.Error, match=f"frame {i}:.*eiger1_data_000002.h5"):
                ds.read(i)
        else:
            np.testing.assert_array_equal(ds.read(i), want[i])


def test_corrupt_chunk(corpus_copy, reference):
    """Garbage in the middle of frame 3's chunk (the second data file's first frame): h5py +
    hdf5plugin fail on it, and so do we, naming the file and the frame."""
    data = corpus_copy / "eiger2_data_000002.h5"
    with h5py.File(data) as f:
        info = f["/entry/data/data"].id.get_chunk_info(0)
    raw = bytearray(data.read_bytes())
    raw[info.byte_offset + 12: info.byte_offset + info.size] = b"\xff" * (info.size - 12)
    data.write_bytes(bytes(raw))
    with h5py.File(corpus_copy / "eiger2_master.h5") as f, pytest.raises(OSError):
        f["/entry/data/data_000002"][0]
    want = reference["eiger2_master.h5"][0]
    for ds in (hdrmx_dials.open(corpus_copy / "eiger2_master.h5"),
               hdrmx_dials.open(corpus_copy / "eiger2_master.h5", dxtbx=True, bit_depth=16)):
        with pytest.raises(hdrmx_dials.Error, match="frame 3:.*eiger2_data_000002.h5"):
            ds.read(3)
        with pytest.raises(hdrmx_dials.Error, match="frame 3:"):
            ds.read_many(range(7))
        assert ds.read(4).shape == (48, 64)
    np.testing.assert_array_equal(hdrmx_dials.open(corpus_copy / "eiger2_master.h5").read(4),
                                  want[4])


def test_truncated_data_file(corpus_copy):
    data = corpus_copy / "dls_000003.h5"          # frames 8-11 of dls.h5
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    ds = hdrmx_dials.open(corpus_copy / "dls.h5")
    ds.read(7)
    with pytest.raises(hdrmx_dials.Error, match="frame 11:.*dls_000003.h5"):
        ds.read(11)


def test_unreadable_masters(tmp_path):
    with pytest.raises(hdrmx_dials.Error, match="no_such_master.h5"):
        hdrmx_dials.open(tmp_path / "no_such_master.h5")
    (tmp_path / "text_master.h5").write_text("not HDF5\n" * 100)
    with pytest.raises(hdrmx_dials.Error, match="text_master.h5.*not an HDF5 file"):
        hdrmx_dials.open(tmp_path / "text_master.h5")


def test_unsupported_filter(tmp_path):
    path = write_master(tmp_path / "lzf.h5", values(np.uint16, 2, 7), chunks=(1, NY, NX),
                        compression="lzf")
    ds = hdrmx_dials.open(path)
    with pytest.raises(hdrmx_dials.UnsupportedError, match="frame 1:.*32000"):
        ds.read(1)
    assert issubclass(hdrmx_dials.UnsupportedError, hdrmx_dials.Error)
    assert issubclass(hdrmx_dials.Error, OSError)


@pytest.mark.parametrize("first", ["hdrmx_dials", "h5py, hdf5plugin"])
def test_import_order_does_not_matter(first):
    """hdrmx_dials loads no HDF5 library and no filter plugin, so it goes before or after h5py
    and hdf5plugin (in a DIALS process, dxtbx imports those itself)."""
    modules = ["hdrmx_dials", "h5py, hdf5plugin"]
    modules.sort(key=lambda m: m != first)
    code = (f"import {modules[0]}\nimport {modules[1]}\nimport numpy as np\n"
            f"p = {str(CORPUS / 'dls.h5')!r}\n"
            "with h5py.File(p) as f:\n"
            "    assert np.array_equal(f['/entry/data/data'][5], hdrmx_dials.open(p).read(5))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
