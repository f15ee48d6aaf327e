"""The XDS plugin (libhdrmx_xds.so) as XDS runs it.

A C host (xds-plugin/host/host.c, which cargo builds as `hdrmx-xds-host`) dlopen()s the plugin
with RTLD_NOW | RTLD_GLOBAL, opens a master, reads the header and calls plugin_get_data for
every frame from 1, 2 and 8 threads in shuffled order, into buffers pre-filled with junk. What
it gets must equal, bit for bit, the int32 frames computed here from h5py + hdf5plugin with the
XDS convention written out below (not taken from the plugin):

- mask bit 0 (gap) -> -1; any other mask bit -> -2;
- an unmasked pixel at its type's maximum (saturated) -> 2^31 - 1, or -1 with
  HDRMX_XDS_SATURATED=-1;
- other values kept, unsigned stay positive, uint32 above 2^31 - 1 clip to 2^31 - 1;
- HDRMX_XDS_BIN=N: N x N bins, the remainder rows and columns dropped; a bin is -1 if any of its
  pixels is -1, else -2 if any is negative, else the sum clipped to 2^31 - 1.

Masters: every one of the neggia-rs corpus (DECTRIS links, DLS VDS, inverse beam, multi-trigger,
printf and same-file VDS), and masters written here: every mask bit, saturated pixels, uint8,
uint16, uint32, int16, int32, big-endian and deflate (neggia's general read), uint64 (refused).
Failures: a missing data file or VDS source gives -2 for exactly its frames and the process
goes on; open errors give -4; re-open after close works; a second open without close is -4.

The plugin and the host come from $HDRMX_PLUGIN_DIR (xtask sets target/release), else
target/release.
"""

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "files"
I32_MAX = 2**31 - 1
DETECTOR = "/entry/instrument/detector"
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
TIMEOUT = 300


def _built():
    env = os.environ.get("HDRMX_PLUGIN_DIR")
    d = Path(env) if env else ROOT / "target" / "release"
    lib, host = d / "libhdrmx_xds.so", d / "hdrmx-xds-host"
    missing = [p.name for p in (lib, host) if not p.is_file()]
    if missing and env:
        pytest.fail(f"HDRMX_PLUGIN_DIR={env}: {', '.join(missing)} not built")
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {d} (cargo build --release -p hdrmx-xds "
                    "-p hdrmx-xds-host)", allow_module_level=True)
    return lib, host


LIB, HOST = _built()


# ---------------------------------------------------------------- the convention, from the rules

def xds(raw, mask, saturated=I32_MAX):
    """Frames (k, ny, nx) of any integer type in the XDS convention."""
    top = np.iinfo(raw.dtype).max
    v = raw.astype(np.int64)
    out = np.where(v == top, saturated, np.minimum(v, I32_MAX))
    if mask is not None:
        out = np.where(mask != 0, -2, out)
        out = np.where(mask & 1 != 0, -1, out)
    return out.astype(np.int32)


def binned(frames, n):
    k, ny, nx = frames.shape
    b = frames[:, : ny // n * n, : nx // n * n].reshape(k, ny // n, n, nx // n, n).astype(np.int64)
    gap = (b == -1).any(axis=(2, 4))
    bad = (b < 0).any(axis=(2, 4))
    total = np.minimum(np.where(b < 0, 0, b).sum(axis=(2, 4)), I32_MAX)
    return np.where(gap, -1, np.where(bad, -2, total)).astype(np.int32)


# ---------------------------------------------------------------- reading with h5py

def h5_stack(path, data_paths=None):
    """The raw frames of a master as h5py reads them."""
    with h5py.File(path, "r") as f:
        if data_paths is None:
            g = f["/entry/data"]
            data_paths = (["/entry/data/data"] if "data" in g else
                          [f"/entry/data/{k}" for k in sorted(g) if k.startswith("data_")])
        return np.concatenate([f[p][()] for p in data_paths])


def h5_mask(path):
    with h5py.File(path, "r") as f:
        for p in (f"{DETECTOR}/pixel_mask", f"{DETECTOR}/detectorSpecific/pixel_mask"):
            if p in f:
                return f[p][()].astype(np.uint32)
    return None


def corpus_masters():
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    return {f["file"]: f["masters"] for f in manifest["files"] if f.get("masters")}


MASTERS = corpus_masters()


# ---------------------------------------------------------------- the host

class Run:
    """What one host run printed: open and header results, and one dict per data command."""

    def __init__(self, stdout, stderr):
        self.stderr = stderr
        self.opens, self.headers, self.closes, self.data, self.bench = [], [], [], [], []
        current = {}
        for line in stdout.splitlines():
            word, *rest = line.split()
            if word == "open":
                self.opens.append([int(v) for v in rest])
            elif word == "header":
                err, nx, ny, nbytes, qx, qy, frames = rest
                self.headers.append(dict(err=int(err), nx=int(nx), ny=int(ny), nbytes=int(nbytes),
                                         qx=float(qx), qy=float(qy), frames=int(frames)))
            elif word == "frame":
                current[int(rest[0])] = int(rest[1])
            elif word == "data":
                assert int(rest[0]) == len(current)
                self.data.append(current)
                current = {}
            elif word == "close":
                self.closes.append(int(rest[0]))
            elif word == "bench":
                self.bench.append(rest)
            else:
                raise AssertionError(f"host printed {line!r}")


def host(*cmds, env=None):
    """Runs the host. It must end normally: a plugin that crashes takes the host with it."""
    full_env = dict(os.environ)
    for k in ("HDRMX_IMAGE_NUMBER_OFFSET", "HDRMX_XDS_BIN", "HDRMX_XDS_SATURATED", "HDRMX_LOG"):
        full_env.pop(k, None)
    full_env.update(env or {})
    p = subprocess.run([str(HOST), str(LIB), *map(str, cmds)], capture_output=True, text=True,
                       env=full_env, timeout=TIMEOUT)
    assert p.returncode == 0, f"host ended with {p.returncode}:\n{p.stderr[-3000:]}"
    return Run(p.stdout, p.stderr)


def read_all(tmp_path, master, env=None, runs=((1, 0), (2, 11), (8, 23)), frames="all"):
    """Opens `master` and reads every frame once per (threads, shuffle seed) in `runs`.
    Returns the Run and, per run, the frames as the host got them (k, ny, nx)."""
    cmds = ["open", master, "header"]
    outs = []
    for threads, seed in runs:
        out = tmp_path / f"frames_{threads}_{seed}.bin"
        outs.append(out)
        cmds += ["threads", threads, "shuffle", seed, "out", out, "data", frames]
    r = host(*cmds, "close", env=env)
    assert r.opens[0][0] == 0, r.stderr
    h = r.headers[0]
    assert h["err"] == 0, r.stderr
    got = []
    for out, data in zip(outs, r.data):
        raw = np.fromfile(out, dtype="<i4") if out.exists() else np.zeros(0, "<i4")
        n = len(data)
        full = np.zeros(n * h["ny"] * h["nx"], "<i4")
        full[: raw.size] = raw
        got.append(full.reshape(n, h["ny"], h["nx"]))
    assert r.closes == [0]
    return r, got


def check_master(tmp_path, path, want, env=None, missing=()):
    """Every frame of `path`, from 1, 2 and 8 threads, equals `want`; frames in `missing`
    (1-based) fail with -2 and only they."""
    r, got = read_all(tmp_path, path, env=env)
    h = r.headers[0]
    assert (h["frames"], h["ny"], h["nx"]) == want.shape, path
    for data, frames in zip(r.data, got):
        failed = sorted(k for k, err in data.items() if err != 0)
        assert failed == sorted(missing), f"{path}: frames that failed: {failed}\n{r.stderr[-2000:]}"
        assert all(data[k] == -2 for k in failed)
        for k in range(1, want.shape[0] + 1):
            if k in missing:
                continue
            if not np.array_equal(frames[k - 1], want[k - 1]):
                bad = np.argwhere(frames[k - 1] != want[k - 1])[:5].tolist()
                raise AssertionError(f"{path} frame {k}: pixels {bad} differ (y, x)")
    return r


# ---------------------------------------------------------------- the corpus

@pytest.mark.parametrize("name", sorted(MASTERS))
def test_every_corpus_master(tmp_path, name):
    info = MASTERS[name]
    path = CORPUS / name
    raw = h5_stack(path, info["data"])
    want = xds(raw, h5_mask(path))
    # Frames h5py cannot give (a missing VDS source, which it silently fills) must fail.
    missing = [i + 1 for i, sha in enumerate(info["frame_sha256"]) if sha is None]
    r = check_master(tmp_path, path, want, missing=missing)
    h = r.headers[0]
    assert h["nbytes"] == raw.dtype.itemsize
    assert h["qx"] == pytest.approx(info["x_pixel_size"], rel=1e-6)
    assert h["qy"] == pytest.approx(info["y_pixel_size"], rel=1e-6)
    major, minor, patch = (int(v) for v in VERSION.split("."))
    assert r.opens[0] == [0, 1, major, minor, patch, -1]
    if missing:
        # One line per failed frame per run, naming the frame and the missing file.
        for k in missing:
            assert f"frame {k}:" in r.stderr and "vds_missing_000002.h5" in r.stderr


def test_xds_template_and_nxs_names(tmp_path):
    want = xds(h5_stack(CORPUS / "eiger1_master.h5"), h5_mask(CORPUS / "eiger1_master.h5"))
    check_master(tmp_path, CORPUS / "eiger1_??????.h5", want)
    want = xds(h5_stack(CORPUS / "dls.nxs"), h5_mask(CORPUS / "dls.nxs"))
    check_master(tmp_path, CORPUS / "dls.nxs", want)


# ---------------------------------------------------------------- conventions, on our own masters

NY, NX = 50, 67  # not multiples of 2, 3 or 4: binning drops the remainder
BSLZ4 = hdf5plugin.Bitshuffle(cname="lz4")


def convention_mask():
    """Every bit alone, bit 0 with others, gap rows and columns, scattered defects."""
    m = np.zeros((NY, NX), np.uint32)
    for bit in range(32):
        m[3 + bit % 15, 2 + 2 * bit] = np.uint32(1) << np.uint32(bit)
    m[30, 10] = 1 | 2 | (1 << 31)
    m[31, 11] = 2 | 4 | 8
    m[:, 40:42] |= 1
    m[20, :] |= 1
    rng = np.random.default_rng(5)
    for _ in range(40):
        m[rng.integers(NY), rng.integers(NX)] |= np.uint32(1) << np.uint32(rng.integers(32))
    return m


def convention_frames(dtype, n, seed, mask):
    """Low counts, some from the whole range of the type, saturated pixels masked and not."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    v = rng.poisson(3, (n, NY, NX)).astype(np.int64)
    wide = rng.random((n, NY, NX)) < 0.1
    v = np.where(wide, rng.integers(max(info.min, -(2**40)), info.max, (n, NY, NX), endpoint=True), v)
    v[rng.random((n, NY, NX)) < 0.04] = info.max
    v[:, mask & 1 != 0] = info.max  # gaps hold the maximum, as EIGERs write them
    if info.bits == 32 and info.min == 0:
        v[0, 0, :8] = [2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1, 0, 1, 40000, 65535]
    return v.astype(dtype)


def write_detector(f, mask, mask_path):
    f.create_group("/entry").attrs["NX_class"] = "NXentry"
    f["/entry/definition"] = "NXmx"
    det = f.create_group(DETECTOR)
    det.attrs["NX_class"] = "NXdetector"
    for name in ("x_pixel_size", "y_pixel_size"):
        det[name] = np.float64(7.5e-05)
        det[name].attrs["units"] = "m"
    if mask is not None:
        f.create_dataset(mask_path, data=mask, chunks=mask.shape, compression="gzip")
    f.create_group("/entry/data").attrs["NX_class"] = "NXdata"


def write_masters(d, stem, frames, mask, per_file=3, **storage):
    """FileWriter-style data files and two masters over them: links (mask in
    detectorSpecific, as EIGER1) and VDS (mask in the detector group). Returns their paths."""
    d.mkdir(parents=True, exist_ok=True)
    storage = storage or dict(chunks=(1, NY, NX), **BSLZ4)
    files = []
    for k, first in enumerate(range(0, len(frames), per_file), start=1):
        part = frames[first:first + per_file]
        name = f"{stem}_data_{k:06d}.h5"
        with h5py.File(d / name, "w") as f:
            f.create_dataset("/entry/data/data", data=part, **storage)
        files.append((name, first, len(part)))
    links = d / f"{stem}_master.h5"
    with h5py.File(links, "w") as f:
        write_detector(f, mask, f"{DETECTOR}/detectorSpecific/pixel_mask")
        for k, (name, _, _) in enumerate(files, start=1):
            f[f"/entry/data/data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
    vds = d / f"{stem}_vds.h5"
    with h5py.File(vds, "w") as f:
        write_detector(f, mask, f"{DETECTOR}/pixel_mask")
        layout = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
        for name, first, n in files:
            layout[first:first + n] = h5py.VirtualSource(name, "/entry/data/data",
                                                         shape=(n, NY, NX))
        f["/entry/data"].create_virtual_dataset("data", layout, fillvalue=0)
    return links, vds


CASES = {
    # name: (dtype, storage); storage None is bslz4, one frame per chunk (the fast path)
    "u8": ("u1", None),
    "u16": ("<u2", None),
    "u32": ("<u4", None),
    "i16": ("<i2", None),
    "i32": ("<i4", None),
    # neggia's general read: big-endian, deflate, two frames per chunk; uncompressed, contiguous
    "u16be_gzip": (">u2", dict(chunks=(2, NY, NX), maxshape=(None, NY, NX), compression="gzip",
                               shuffle=True)),
    "u32_contiguous": ("<u4", dict(chunks=None)),
}


@pytest.fixture(scope="module")
def conventions(tmp_path_factory):
    d = tmp_path_factory.mktemp("conventions")
    mask = convention_mask()
    made = {}
    for seed, (name, (dtype, storage)) in enumerate(CASES.items()):
        frames = convention_frames(np.dtype(dtype), 7, seed, mask)
        made[name] = (frames, mask) + write_masters(d / name, name, frames, mask, **(storage or {}))
    return made


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("kind", ["links", "vds"])
def test_conventions(tmp_path, conventions, name, kind):
    frames, mask, links, vds = conventions[name]
    path = links if kind == "links" else vds
    raw = h5_stack(path)
    assert np.array_equal(raw, frames)  # h5py reads back what was written
    check_master(tmp_path, path, xds(raw, mask))
    check_master(tmp_path, path, xds(raw, mask, saturated=-1), env={"HDRMX_XDS_SATURATED": "-1"})


def test_the_conventions_are_exercised(conventions):
    """The masters hold what the rules are about: every mask bit, saturated pixels masked and
    not, uint32 values above 2^31 - 1, negative values."""
    frames, mask, _, _ = conventions["u32"]
    assert all(((mask >> np.uint32(b)) & 1).any() for b in range(32))
    top = np.iinfo(np.uint32).max
    assert ((frames == top) & (mask == 0)).any() and ((frames == top) & (mask != 0)).any()
    assert ((frames > I32_MAX) & (frames < top) & (mask == 0)).any()
    assert (conventions["i16"][0] < 0).any()
    assert ((conventions["u16"][0] > 32767) & (conventions["u16"][1] == 0)).any()


@pytest.mark.parametrize("n", [2, 3, 4])
def test_binning(tmp_path, conventions, n):
    frames, mask, links, vds = conventions["u16"]
    r = check_master(tmp_path, vds, binned(xds(frames, mask), n), env={"HDRMX_XDS_BIN": str(n)})
    h = r.headers[0]
    assert (h["nx"], h["ny"]) == (NX // n, NY // n)
    assert h["qx"] == pytest.approx(7.5e-05 * n, rel=1e-6)
    frames, mask, links, vds = conventions["u32"]
    check_master(tmp_path, links, binned(xds(frames, mask, saturated=-1), n),
                 env={"HDRMX_XDS_BIN": str(n), "HDRMX_XDS_SATURATED": "-1"})


def test_image_number_offset(tmp_path, conventions):
    frames, mask, links, _ = conventions["u16"]
    want = xds(frames, mask)
    env = {"HDRMX_IMAGE_NUMBER_OFFSET": "100"}
    r, got = read_all(tmp_path, links, env=env, runs=[(2, 5)], frames="99-108")
    assert r.headers[0]["frames"] == 7
    assert r.data[0] == {k: (0 if 101 <= k <= 107 else -2) for k in range(99, 109)}
    assert np.array_equal(got[0][2:9], want)


def test_unsupported_type_is_minus_3(tmp_path):
    mask = convention_mask()
    frames = np.arange(3 * NY * NX, dtype="<u8").reshape(3, NY, NX)
    links, _ = write_masters(tmp_path, "u64", frames, mask)
    r = host("open", links, "header", "data", "all", "close")
    assert r.opens[0][0] == 0 and r.headers[0]["nbytes"] == 8
    assert r.data[0] == {1: -3, 2: -3, 3: -3}
    assert "not supported" in r.stderr


# ---------------------------------------------------------------- failures

def test_missing_data_file_fails_only_its_frames(tmp_path):
    for f in ["eiger1_master.h5", "eiger1_data_000001.h5", "eiger1_data_000003.h5"]:
        shutil.copy(CORPUS / f, tmp_path / f)
    full = xds(h5_stack(CORPUS / "eiger1_master.h5"), h5_mask(CORPUS / "eiger1_master.h5"))
    r = check_master(tmp_path, tmp_path / "eiger1_master.h5", full, missing=[5, 6, 7, 8])
    lines = [l for l in r.stderr.splitlines() if "error" in l]
    assert len(lines) == 3 * 4 and all("eiger1_data_000002.h5" in l for l in lines), lines


def test_corrupt_and_truncated_data_fail_only_their_frames(tmp_path):
    for f in ["eiger2_master.h5", *(f"eiger2_data_00000{k}.h5" for k in (1, 2, 3))]:
        shutil.copy(CORPUS / f, tmp_path / f)
    full = xds(h5_stack(CORPUS / "eiger2_master.h5"), h5_mask(CORPUS / "eiger2_master.h5"))
    # Frame 2 (the second chunk of file 1): its header claims another size.
    with h5py.File(tmp_path / "eiger2_data_000001.h5", "r") as f:
        offset = f["/entry/data/data"].id.get_chunk_info(1).byte_offset
    with open(tmp_path / "eiger2_data_000001.h5", "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 12)
    # File 3 (frame 7) cut in half.
    p = tmp_path / "eiger2_data_000003.h5"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    check_master(tmp_path, tmp_path / "eiger2_master.h5", full, missing=[2, 7])


def test_open_errors(tmp_path):
    (tmp_path / "text_master.h5").write_text("not HDF5\n")
    with h5py.File(tmp_path / "empty_master.h5", "w") as f:
        f.create_group("/entry/data")
    r = host("open", tmp_path / "no_such_master.h5",
             "open", tmp_path / "text_master.h5",
             "open", tmp_path / "empty_master.h5",
             "open", tmp_path,
             "header", "size", 64, 48, "data", "1", "close")
    assert [o[0] for o in r.opens] == [-4, -4, -4, -4]
    assert all(o[1:] == r.opens[0][1:] for o in r.opens)  # info filled even on failure
    # Nothing open: header and data fail with -2, close is harmless.
    assert r.headers[0]["err"] == -2 and r.data[0] == {1: -2} and r.closes == [0]
    for name in ["no_such_master.h5", "text_master.h5", "empty_master.h5"]:
        assert name in r.stderr


def test_bad_options_fail_the_open(tmp_path):
    for k, v in [("HDRMX_XDS_BIN", "5"), ("HDRMX_XDS_SATURATED", "0"),
                 ("HDRMX_IMAGE_NUMBER_OFFSET", "one"), ("HDRMX_LOG", "verbose")]:
        r = host("open", CORPUS / "dls.h5", env={k: v})
        assert r.opens[0][0] == -4
        assert k in r.stderr


def test_reopen_after_close_and_second_open(tmp_path):
    a, b = CORPUS / "eiger2_master.h5", CORPUS / "dls.h5"
    out = [tmp_path / f"{k}.bin" for k in range(3)]
    r = host("open", a, "header", "threads", 2, "out", out[0], "data", "all",
             "open", b,  # without close: refused, and a stays open
             "header", "out", out[1], "data", "all", "close",
             "open", b, "header", "threads", 8, "shuffle", 3, "out", out[2], "data", "all", "close",
             "close")
    assert [o[0] for o in r.opens] == [0, -4, 0]
    assert "plugin_close it first" in r.stderr
    assert r.closes == [0, 0, 0]
    want_a = xds(h5_stack(a), h5_mask(a))
    want_b = xds(h5_stack(b), h5_mask(b))
    assert np.array_equal(np.fromfile(out[0], "<i4").reshape(want_a.shape), want_a)
    assert np.array_equal(np.fromfile(out[1], "<i4").reshape(want_a.shape), want_a)
    assert np.array_equal(np.fromfile(out[2], "<i4").reshape(want_b.shape), want_b)
    assert r.headers[0] == r.headers[1] and r.headers[2]["frames"] == 12


def test_frame_numbers_and_sizes_xds_does_not_ask_for(tmp_path):
    r = host("open", CORPUS / "dls.h5", "header", "data", "0,13,-5,2147483647",
             "size", 48, 64, "data", "1", "size", 64, 48, "data", "12", "close")
    assert r.data == [{0: -2, 13: -2, -5: -2, 2147483647: -2}, {1: -2}, {12: 0}]
    assert "asks for 48 x 64 pixels" in r.stderr


def test_log_lines(tmp_path):
    r = host("open", CORPUS / "dls.h5", "header", "data", "1-2", "close", env={"HDRMX_LOG": "2"})
    assert r.data == [{1: 0, 2: 0}]
    log = r.stderr.splitlines()
    assert any("opened" in l and "dls.h5" in l and "12 frames of 64 x 48" in l for l in log), log
    assert any(l.startswith("hdrmx-xds: header: nx 64 ny 48") for l in log), log
    assert sum(l.startswith("hdrmx-xds: frame ") for l in log) == 2, log
    assert any("closed" in l for l in log), log
    quiet = host("open", CORPUS / "dls.h5", "header", "data", "1-2", "close")
    assert quiet.stderr == ""


def test_exports_exactly_the_four_functions():
    nm = shutil.which("nm")
    if not nm:
        pytest.skip("nm not found (binutils)")
    out = subprocess.run([nm, "-D", "--defined-only", LIB], capture_output=True, text=True,
                         check=True).stdout
    names = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
    assert names == ["plugin_close", "plugin_get_data", "plugin_get_header", "plugin_open"]
