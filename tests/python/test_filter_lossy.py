"""Our lossy filter plugin (311) through h5py and Debian's HDF5 1.10 h5dump.

The plugin comes from $HDRMX_PLUGIN_DIR (xtask sets target/release), else target/release; the
module is skipped when libhdrmx_h5lossy.so is missing. It is COPIED into a private
HDF5_PLUGIN_PATH, and every scenario runs in its own interpreter (this file, run as a script
with a subcommand), as in test_filters.py.

What must hold, and is checked here:
  - every pixel is within (q/2)·sqrt(true count) of its true count;
  - zeros, counts below the exact threshold (ceil(4/q^2), at least 1) and masked pixels (the
    type's maximum) come back exactly, and q = 0 returns every value exactly;
  - every chunk keeps its exact total;
  - the stored cd_values are [1, q_milli, inner, level, elem_size], completed by set_local;
  - h5dump (HDF5 1.10) prints the same numbers h5py reads;
  - a corrupt chunk gives an OSError with our message (h5py) or a clean failure (h5dump),
    never a crash, and the other chunks still read.

Scenarios:
  test_h5py_write_read          h5py writes uint8/16/32 frames through ours, another reads
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

FILTER = 311
LIB = "libhdrmx_h5lossy.so"
HERE = Path(__file__).resolve()

# dataset name -> (dtype, shape [k, ny, nx], chunk, compression_opts, stored cd_values)
DATASETS = {
    "u16_q1": ("uint16", (3, 64, 80), (1, 64, 80), (1000,), [1, 1000, 0, 3, 2]),
    "u16_q2_zstd": ("uint16", (2, 40, 50), (1, 40, 50), (2000, 1, 5), [1, 2000, 1, 5, 2]),
    "u16_q0_lossless": ("uint16", (2, 40, 50), (1, 40, 50), (0,), [1, 0, 0, 3, 2]),
    "u32_q05_two_frames_a_chunk": ("uint32", (4, 50, 60), (2, 50, 60), (500,),
                                   [1, 500, 0, 3, 4]),
    "u32_q0_zstd_lossless": ("uint32", (2, 50, 60), (1, 50, 60), (0, 1, 3), [1, 0, 1, 3, 4]),
    "u32_default_q1": ("uint32", (2, 33, 47), (1, 33, 47), None, [1, 1000, 0, 3, 4]),
    "u8_q1": ("uint8", (2, 20, 31), (1, 20, 31), (1000,), [1, 1000, 0, 3, 1]),
    # Full stored cd_values passed back in (a copied filter pipeline): kept as they are.
    "u16_full_cd_values": ("uint16", (2, 30, 30), (1, 30, 30), (1, 1500, 1, 2, 2),
                           [1, 1500, 1, 2, 2]),
}
CORRUPT_CASES = ["truncated", "truncated_header", "garbage", "bad_version", "count_lies",
                 "masked_code_lies", "sums_count_lies", "sums_len_lies", "other_q"]
CORRUPT_SHAPE, CORRUPT_CHUNK = (3, 40, 50), (1, 40, 50)


def make_data(name):
    """Detector-like frames: Poisson background, Gaussian spots, a few hot pixels, module-gap
    stripes and isolated dead pixels at the maximum."""
    dtype = DATASETS[name][0] if name in DATASETS else "uint16"
    shape = DATASETS[name][1] if name in DATASETS else CORRUPT_SHAPE
    rng = np.random.default_rng(sum(map(ord, name)))
    top = np.iinfo(dtype).max
    k, ny, nx = shape
    lam = np.full(shape, 0.7)
    yy, xx = np.mgrid[0:ny, 0:nx]
    for f in range(k):
        for _ in range(6):
            cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
            peak = rng.uniform(5, 400 if top > 255 else 60)
            lam[f] += peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.0 ** 2))
    d = rng.poisson(lam).astype(np.uint64)
    d[rng.random(shape) < 0.003] = min(top - 1, 20000)
    d = np.minimum(d, top - 1).astype(dtype)
    d[:, :, nx // 3:nx // 3 + 3] = top
    d[:, ny // 2:ny // 2 + 4, :] = top
    d[rng.random(shape) < 0.003] = top
    return d


def exact_below(q_milli):
    return max(1, -(-4_000_000 // (q_milli * q_milli))) if q_milli else None


def check(src, got, q_milli):
    """Problems of `got` as a decoding of `src` at step q_milli/1000, as a list of strings."""
    top = np.iinfo(src.dtype).max
    s, g = src.astype(np.int64), got.astype(np.int64)
    problems = []
    if q_milli == 0:
        if not np.array_equal(s, g):
            problems.append("q = 0 is not lossless")
        return problems
    exact = (s == top) | (s < exact_below(q_milli))
    if not np.array_equal(s[exact], g[exact]):
        problems.append("masked or small counts changed")
    if np.any(g[~exact] == top):
        problems.append("a valid pixel became masked")
    bound = q_milli / 2000 * np.sqrt(s[~exact].astype(np.float64)) + 1e-9
    err = np.abs(g[~exact] - s[~exact])
    if np.any(err > bound):
        i = int(np.argmax(err - bound))
        problems.append(f"error {err[i]} over the bound {bound[i]:.3f}")
    if not np.any(err > 0):
        problems.append("nothing was quantised")
    return problems


def chunk_totals(data, chunk):
    top = np.iinfo(data.dtype).max
    d = np.where(data == top, 0, data).astype(np.uint64)
    k = chunk[0]
    return [int(d[i:i + k].sum()) for i in range(0, d.shape[0], k)]


# ---------------------------------------------------------------- workers (own interpreter)

def worker(argv):
    import h5py

    cmd, path = argv[0], argv[1]
    res = {}
    if cmd == "write":
        with h5py.File(path, "w") as f:
            for name, (dtype, shape, chunk, opts, _) in DATASETS.items():
                f.create_dataset(name, data=make_data(name), chunks=chunk, compression=FILTER,
                                 compression_opts=opts)
    elif cmd == "read":
        with h5py.File(path, "r") as f:
            for name, (dtype, shape, chunk, opts, _) in DATASETS.items():
                d = f[name]
                got, again = d[()], d[()]
                src = make_data(name)
                cd = list(d.id.get_create_plist().get_filter_by_id(FILTER)[1])
                res[name] = {
                    "cd_values": cd,
                    "dtype": str(got.dtype),
                    "deterministic": bool(np.array_equal(got, again)),
                    "problems": check(src, got, cd[1]),
                    "totals_exact": chunk_totals(got, chunk) == chunk_totals(src, chunk),
                    "stored_bytes": d.id.get_storage_size(),
                    "raw_bytes": src.nbytes,
                    "values": got.reshape(-1).tolist(),
                }
    elif cmd == "make-corrupt":
        with h5py.File(path, "w") as f:
            for case in CORRUPT_CASES:
                d = f.create_dataset(case, data=make_data(case), chunks=CORRUPT_CHUNK,
                                     compression=FILTER, compression_opts=(1000,))
                mask, good = d.id.read_direct_chunk((0, 0, 0))
                b = bytearray(good)
                if case == "truncated":
                    b = b[: len(b) // 2]
                elif case == "truncated_header":
                    b = b[:13]
                elif case == "garbage":
                    b = bytearray(b"not a lossy chunk at all" * 4)
                elif case == "bad_version":
                    b[4] = 99
                elif case == "count_lies":
                    b[12:20] = (1 << 40).to_bytes(8, "big")
                elif case == "masked_code_lies":
                    b[20:24] = (0).to_bytes(4, "big")
                elif case == "sums_count_lies":
                    b[24:28] = b"\xff\xff\xff\xff"
                elif case == "sums_len_lies":
                    b[28:32] = b"\xff\xff\xff\xff"
                elif case == "other_q":
                    b[8:12] = (2000).to_bytes(4, "big")
                d.id.write_direct_chunk((0, 0, 0), bytes(b), mask)
    elif cmd == "read-corrupt":
        case = argv[2]
        with h5py.File(path, "r") as f:
            d = f[case]
            src = make_data(case)
            for attempt in ("first", "second"):
                try:
                    d[0]
                    res[attempt] = {"raised": False}
                except Exception as e:  # noqa: BLE001 (the type is what is checked)
                    res[attempt] = {"raised": True, "type": type(e).__name__, "message": str(e)}
            rest = d[1:]
            res["rest_problems"] = check(src[1:], rest, 1000)
    elif cmd == "can-apply":
        kind = argv[2]
        with h5py.File(path, "w") as f:
            try:
                f.create_dataset("x", data=np.zeros((2, 8, 8), kind), chunks=(1, 8, 8),
                                 compression=FILTER, compression_opts=(1000,))
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
    pytest.skip(f"{LIB} not built in {plugin_dir()} (cargo build --release -p hdrmx-h5lossy)",
                allow_module_level=True)

needs_h5dump = pytest.mark.skipif(not H5DUMP, reason="h5dump not found (apt-get install hdf5-tools)")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return FilterEnv(tmp_path_factory.mktemp("lossy"), LIB, HERE)


@pytest.fixture(scope="module")
def read_back(env):
    res, _ = env.run("read", env.file("written"))
    return res


@pytest.mark.parametrize("name", list(DATASETS))
def test_h5py_write_read(read_back, name):
    r = read_back[name]
    dtype, shape, chunk, opts, cd = DATASETS[name]
    assert r["dtype"] == dtype
    assert r["cd_values"] == cd
    assert r["problems"] == []
    assert r["totals_exact"], "a chunk total changed"
    assert r["deterministic"]
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
    assert "lossy" in (res["first"]["message"] + stderr).lower(), stderr[-2000:]
    assert res["rest_problems"] == [], "the valid chunks after the corrupt one"


@needs_h5dump
@pytest.mark.parametrize("case", CORRUPT_CASES)
def test_corrupt_chunk_h5dump(env, case):
    p = env.tool(H5DUMP, "--enable-error-stack", "-d", f"/{case}", env.file("corrupt"))
    assert p.returncode > 0, f"h5dump: exit {p.returncode}\n{p.stderr[-2000:]}"
    entries = re.findall(r"#\d+: (.*)", p.stderr + p.stdout)
    assert any("lossy" in e and "H5Z.c" not in e for e in entries), p.stderr[-3000:]


@pytest.mark.parametrize("kind", ["float32", "int16", "uint64"])
def test_can_apply_refuses(env, tmp_path, kind):
    res, stderr = env.run("can-apply", tmp_path / f"{kind}.h5", kind)
    assert not res["created"], f"{kind} data accepted by the lossy filter"
    assert "lossy" in (res["message"] + stderr).lower(), res["message"]
