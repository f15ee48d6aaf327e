"""Our binning filter plugin (310) through h5py and Debian's HDF5 1.10 h5dump.

The plugin comes from $HDRMX_PLUGIN_DIR (xtask sets target/release), else target/release; the
module is skipped when libhdrmx_h5binning.so is missing. It is COPIED into a private
HDF5_PLUGIN_PATH, and every scenario runs in its own interpreter (this file, run as a script
with a subcommand), as in test_filters.py.

The filter is lossy by design; what must hold, and is checked here:
  - invalid pixels (the type's maximum) come back exactly, and no valid pixel becomes invalid;
  - every N x N bin (the right and bottom ones smaller) keeps its exact total;
  - the values are the deterministic spread the format documents, recomputed here in numpy;
  - the stored cd_values are [n, elem_size, ny, nx], filled in by set_local;
  - h5dump (HDF5 1.10) prints the same numbers h5py reads;
  - a corrupt chunk gives an OSError (h5py) or a clean failure (h5dump), never a crash.

Scenarios:
  test_h5py_write_read          h5py writes uint16/uint32 frames through ours, another reads
  test_h5dump_prints_data       h5dump prints what h5py read
  test_corrupt_chunk_h5py       hostile chunks: OSError twice, other chunks still read
  test_corrupt_chunk_h5dump     h5dump fails cleanly with our message on the error stack
  test_can_apply_refuses        float and signed data are refused at creation
"""
import json
import re
import sys
from pathlib import Path

import numpy as np

from one_filter import H5DUMP, FilterEnv, dump_numbers, mapped_plugins, plugin_dir

FILTER = 310
LIB = "libhdrmx_h5binning.so"
HERE = Path(__file__).resolve()

# dataset name -> (dtype, shape [k, ny, nx], chunk, n)
DATASETS = {
    "u16_n2": ("uint16", (3, 60, 70), (1, 60, 70), 2),
    "u16_n3_odd": ("uint16", (2, 61, 67), (1, 61, 67), 3),
    "u32_n2_two_frames_a_chunk": ("uint32", (4, 50, 45), (2, 50, 45), 2),
    "u32_n4_odd": ("uint32", (2, 37, 53), (1, 37, 53), 4),
    "u8_n2": ("uint8", (2, 20, 31), (1, 20, 31), 2),
}
CORRUPT_CASES = ["truncated", "truncated_header", "garbage", "bad_version", "runs_ffffffff",
                 "sums_claim_more"]
CORRUPT_SHAPE, CORRUPT_CHUNK = (3, 40, 50), (1, 40, 50)


def make_data(name):
    """Detector-like frames: small Poisson counts, a few bright pixels, module-gap-like
    stripes and a few isolated pixels at the maximum."""
    dtype, shape, _, _ = DATASETS[name] if name in DATASETS else ("uint16", CORRUPT_SHAPE, 0, 2)
    rng = np.random.default_rng(sum(map(ord, name)))
    top = np.iinfo(dtype).max
    d = rng.poisson(1.5, shape).astype(np.uint64)
    d[rng.random(shape) < 0.01] = top - 1 if dtype == "uint8" else 5000
    d = np.minimum(d, top - 1).astype(dtype)
    k, ny, nx = shape
    d[:, :, nx // 3:nx // 3 + 4] = top
    d[:, ny // 2:ny // 2 + 5, :] = top
    d[rng.random(shape) < 0.005] = top
    return d


def bins(n, ny, nx):
    """(y0, y1, x0, x1) of every bin, row-major, the right and bottom ones smaller."""
    return [(y, min(y + n, ny), x, min(x + n, nx)) for y in range(0, ny, n)
            for x in range(0, nx, n)]


def expected(data, n):
    """The documented decoding: invalid pixels exact; a bin's sum S over its c valid pixels
    is S // c each, plus one on the first S % c valid pixels in row-major order in the bin."""
    top = np.iinfo(data.dtype).max
    out = data.copy()
    for f in range(data.shape[0]):
        for y0, y1, x0, x1 in bins(n, data.shape[1], data.shape[2]):
            block = data[f, y0:y1, x0:x1].reshape(-1)
            valid = block != top
            c = int(valid.sum())
            if c == 0:
                continue
            s = int(block[valid].astype(np.uint64).sum())
            vals = np.full(c, s // c, dtype=np.uint64)
            vals[: s % c] += 1
            res = block.copy()
            res[valid] = vals.astype(data.dtype)
            out[f, y0:y1, x0:x1] = res.reshape(y1 - y0, x1 - x0)
    return out


def bin_totals(data, n):
    top = np.iinfo(data.dtype).max
    d = np.where(data == top, 0, data).astype(np.uint64)
    return [int(d[f, y0:y1, x0:x1].sum()) for f in range(d.shape[0])
            for y0, y1, x0, x1 in bins(n, d.shape[1], d.shape[2])]


# ---------------------------------------------------------------- workers (own interpreter)

def worker(argv):
    import h5py

    cmd, path = argv[0], argv[1]
    res = {}
    if cmd == "write":
        with h5py.File(path, "w") as f:
            for name, (dtype, shape, chunk, n) in DATASETS.items():
                f.create_dataset(name, data=make_data(name), chunks=chunk, compression=FILTER,
                                 compression_opts=(n,))
            f.create_dataset("raw_u16", data=make_data("u16_n2"))
    elif cmd == "read":
        with h5py.File(path, "r") as f:
            for name, (dtype, shape, chunk, n) in DATASETS.items():
                d = f[name]
                got, again = d[()], d[()]
                src = make_data(name)
                plist = d.id.get_create_plist()
                cd = list(plist.get_filter_by_id(FILTER)[1])
                res[name] = {
                    "cd_values": cd,
                    "dtype": str(got.dtype),
                    "deterministic": bool(np.array_equal(got, again)),
                    "invalid_exact": bool(np.array_equal(got == np.iinfo(dtype).max,
                                                         src == np.iinfo(dtype).max)),
                    "totals_exact": bin_totals(got, n) == bin_totals(src, n),
                    "as_documented": bool(np.array_equal(got, expected(src, n))),
                    "stored_bytes": d.id.get_storage_size(),
                    "raw_bytes": src.nbytes,
                    "values": got.reshape(-1).tolist(),
                }
    elif cmd == "make-corrupt":
        with h5py.File(path, "w") as f:
            for case in CORRUPT_CASES:
                d = f.create_dataset(case, data=make_data(case), chunks=CORRUPT_CHUNK,
                                     compression=FILTER, compression_opts=(2,))
                mask, good = d.id.read_direct_chunk((0, 0, 0))
                b = bytearray(good)
                if case == "truncated":
                    b = b[: len(b) // 2]
                elif case == "truncated_header":
                    b = b[:7]
                elif case == "garbage":
                    b = bytearray(b"not a binned chunk at all" * 4)
                elif case == "bad_version":
                    b[4] = 99
                elif case == "runs_ffffffff":
                    b[28:32] = b"\xff\xff\xff\xff"
                elif case == "sums_claim_more":
                    # The bitshuffle header of the sums, after the header and run list.
                    at = 40 + int.from_bytes(b[32:36], "big")
                    b[at:at + 8] = (1 << 40).to_bytes(8, "big")
                d.id.write_direct_chunk((0, 0, 0), bytes(b), mask)
    elif cmd == "read-corrupt":
        case = argv[2]
        with h5py.File(path, "r") as f:
            d = f[case]
            want = expected(make_data(case), 2)
            for attempt in ("first", "second"):
                try:
                    d[0]
                    res[attempt] = {"raised": False}
                except Exception as e:  # noqa: BLE001 (the type is what is checked)
                    res[attempt] = {"raised": True, "type": type(e).__name__, "message": str(e)}
            res["rest_ok"] = bool(np.array_equal(d[1:], want[1:]))
    elif cmd == "can-apply":
        kind = argv[2]
        dt = {"float32": "float32", "int16": "int16", "uint64": "uint64"}[kind]
        with h5py.File(path, "w") as f:
            try:
                f.create_dataset("x", data=np.zeros((2, 8, 8), dt), chunks=(1, 8, 8),
                                 compression=FILTER, compression_opts=(2,))
                res = {"created": True}
            except Exception as e:  # noqa: BLE001
                res = {"created": False, "type": type(e).__name__, "message": str(e)}
    res["plugins"] = mapped_plugins()
    print(json.dumps(res))


if __name__ == "__main__":
    worker(sys.argv[1:])
    sys.exit(0)


# ---------------------------------------------------------------- tests (pytest)

import pytest  # noqa: E402


if not (plugin_dir() / LIB).is_file():
    pytest.skip(f"{LIB} not built in {plugin_dir()} (cargo build --release -p hdrmx-h5binning)",
                allow_module_level=True)

needs_h5dump = pytest.mark.skipif(not H5DUMP, reason="h5dump not found (apt-get install hdf5-tools)")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return FilterEnv(tmp_path_factory.mktemp("binning"), LIB, HERE)


@pytest.fixture(scope="module")
def read_back(env):
    res, _ = env.run("read", env.file("written"))
    return res


@pytest.mark.parametrize("name", list(DATASETS))
def test_h5py_write_read(read_back, name):
    r = read_back[name]
    dtype, shape, chunk, n = DATASETS[name]
    assert r["dtype"] == dtype
    assert r["cd_values"] == [n, np.dtype(dtype).itemsize, shape[1], shape[2]]
    assert r["invalid_exact"], "invalid pixels changed"
    assert r["totals_exact"], "a bin total changed"
    assert r["deterministic"]
    assert r["as_documented"], "values differ from the documented spread"
    assert r["stored_bytes"] < r["raw_bytes"], (r["stored_bytes"], r["raw_bytes"])


@needs_h5dump
@pytest.mark.parametrize("name", list(DATASETS))
def test_h5dump_prints_data(env, read_back, name):
    p = env.tool(H5DUMP, "-d", f"/{name}", "-y", "-w", "0", env.file("written"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert dump_numbers(p.stdout) == read_back[name]["values"]


@pytest.mark.parametrize("case", CORRUPT_CASES)
def test_corrupt_chunk_h5py(env, case):
    res, stderr = env.run("read-corrupt", env.file("corrupt"), case)
    for attempt in ("first", "second"):
        a = res[attempt]
        assert a["raised"], f"{attempt} read of a corrupt chunk ({case}) did not raise"
        assert a["type"] == "OSError", a
    assert "binning" in (res["first"]["message"] + stderr).lower(), stderr[-2000:]
    assert res["rest_ok"], "the valid chunks after the corrupt one"


@needs_h5dump
@pytest.mark.parametrize("case", CORRUPT_CASES)
def test_corrupt_chunk_h5dump(env, case):
    p = env.tool(H5DUMP, "--enable-error-stack", "-d", f"/{case}", env.file("corrupt"))
    assert p.returncode > 0, f"h5dump: exit {p.returncode}\n{p.stderr[-2000:]}"
    entries = re.findall(r"#\d+: (.*)", p.stderr + p.stdout)
    assert any("binning" in e and "H5Z.c" not in e for e in entries), p.stderr[-3000:]


@pytest.mark.parametrize("kind", ["float32", "int16", "uint64"])
def test_can_apply_refuses(env, tmp_path, kind):
    res, stderr = env.run("can-apply", tmp_path / f"{kind}.h5", kind)
    assert not res["created"], f"{kind} data accepted by the binning filter"
    assert "binning" in (res["message"] + stderr).lower(), res["message"]
