"""`hdrmx bin`, `sum`, `roi` and `compress`, run as a user runs them, their output read by others.

Sources are written by `hdrmx simulate` (EIGER2 1M: gaps at the dtype's maximum with mask bit 0,
hot pixels, spots): uint16 behind a VDS with a low saturation_value (40, set here in the master so
that the saturation rule is exercised by the spots), and uint32 behind DECTRIS links. Each
command's output is then checked against numpy computations written here from the rules the
commands document (not taken from hdrmx):

- bin N: floor shape; a bin with a masked pixel (mask != 0, or a value at the dtype's maximum) is
  2^32 - 1; else the exact sum, at least saturation x N^2 when any pixel reached saturation, and
  at most 2^32 - 2. The mask is OR-ed over each bin. Pixel size x N, beam centre / N,
  saturation_value x N^2 (at most 2^32 - 2).
- sum K: groups of K frames; a trailing partial group is left out. A pixel at the maximum in any
  frame is 2^32 - 1; else the sum, at least saturation x K when any frame reached saturation.
  count_time, frame_time and the omega step x K, saturation_value x K, mask unchanged.
- roi: the rectangle of every frame and of the mask, same dtype; beam centre minus the origin.
- compress q: same dtype and geometry; |out - in| <= (q/2)·sqrt(in) for every pixel, exact at 0,
  below 4/q^2 and at the maximum; frame totals within 1e-4; q = 0 bit-exact.

Readers: h5py (hdf5plugin for bitshuffle/LZ4; the lossy filter from our plugin alone on a private
HDF5_PLUGIN_PATH, in a subprocess), the nxmx package (dxtbx's NXmx reader) for the geometry,
dxtbx itself when importable (it is not installable from PyPI: run in a DIALS environment),
neggia-rs through hdrmx_dials, and the XDS plugin through its C host.

The binary comes from $HDRMX_BIN, else target/{release,debug}/hdrmx; plugins, the XDS plugin and
its host from $HDRMX_PLUGIN_DIR, else target/release.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (the reference bitshuffle/LZ4 for the sources)
import numpy as np
import pytest

from built import HDRMX_MISSING, hdrmx_binary, plugin_dir

ROOT = Path(__file__).resolve().parents[2]
DET = "/entry/instrument/detector"
U32_MAX = 2**32 - 1
I32_MAX = 2**31 - 1
TIMEOUT = 300


HDRMX = hdrmx_binary()
if HDRMX is None:
    pytest.skip(HDRMX_MISSING, allow_module_level=True)
PLUGIN_DIR = plugin_dir()


def _built(*names, build):
    missing = [n for n in names if not (PLUGIN_DIR / n).is_file()]
    if missing and os.environ.get("HDRMX_PLUGIN_DIR"):
        pytest.fail(f"HDRMX_PLUGIN_DIR={PLUGIN_DIR}: {', '.join(missing)} not built")
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {PLUGIN_DIR} ({build})")
    return [PLUGIN_DIR / n for n in names]


# ---------------------------------------------------------------- sources and commands

SOURCES = {
    # name: (simulate arguments, saturation_value written into the master or None)
    "u16": (["--pixel", "uint16", "--frames", "5", "--frames-per-file", "2"], 40),
    "u32": (["--pixel", "uint32", "--frames", "4", "--frames-per-file", "3", "--links"], None),
}

ROI = (100, 37, 300, 211)  # x, y, width, height

# name: (source, hdrmx arguments after the input)
CASES = {
    "bin2-u16": ("u16", ["bin", "--factor", "2"]),
    "bin3-u32": ("u32", ["bin", "--factor", "3", "--codec", "bszstd"]),
    "bin4-u16": ("u16", ["bin", "--factor", "4", "--links"]),
    "sum2-u16": ("u16", ["sum", "--frames", "2"]),
    "sum4-u32": ("u32", ["sum", "--frames", "4", "--codec", "lz4"]),
    "roi-u16": ("u16", ["roi", "--roi", ",".join(map(str, ROI))]),
    "roi-u32": ("u32", ["roi", "--roi", ",".join(map(str, ROI)), "--frames-per-file", "1"]),
    "q1-u16": ("u16", ["compress", "--lossy", "q=1"]),
    "q2-u32": ("u32", ["compress", "--lossy", "q=2", "--inner", "zstd"]),
    "q0-u16": ("u16", ["compress", "--lossy", "q=0", "--inner", "zstd"]),
}


def run(*args, cwd=None):
    return subprocess.run([HDRMX, *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("reduce-sources")
    out = {}
    for name, (args, saturation) in SOURCES.items():
        d = base / name
        r = run("simulate", "--detector", "eiger2-1m", "--out", d, "--name", "x",
                "--spots", "60", *args)
        assert r.returncode == 0, r.stderr
        master = d / "x_master.h5"
        if saturation is not None:
            with h5py.File(master, "r+") as f:
                f[f"{DET}/saturation_value"][()] = saturation
        out[name] = master
    return out


class Outputs:
    """Each case run once, when a test first asks for it: name -> (output master, stderr)."""

    def __init__(self, sources, base):
        self.sources, self.base, self.done = sources, base, {}

    def __getitem__(self, name):
        if name not in self.done:
            src, args = CASES[name]
            master = self.base / name / "r_master.h5"
            r = run(args[0], self.sources[src], *args[1:], "-o", master)
            assert r.returncode == 0, f"{name}: {r.stderr}"
            assert r.stdout.strip() == str(master)
            self.done[name] = (master, r.stderr)
        return self.done[name]


@pytest.fixture(scope="module")
def outputs(sources, tmp_path_factory):
    return Outputs(sources, tmp_path_factory.mktemp("reduce-outputs"))


def stack(master):
    with h5py.File(master, "r") as f:
        g = f["/entry/data"]
        if "data" in g:
            return g["data"][()]
        return np.concatenate([g[k][()] for k in sorted(g) if k.startswith("data_")])


def detector(master):
    with h5py.File(master, "r") as f:
        d = f[DET]
        return {k: d[k][()] for k in d if isinstance(d[k], h5py.Dataset)}


def read_lossy(master, tmp_path):
    """The frames of a compress output read by h5py with our lossy plugin alone on the plugin
    path (no hdf5plugin in that process)."""
    [lib] = _built("libhdrmx_h5lossy.so", build="cargo build --release -p hdrmx-h5lossy")
    plugins = tmp_path / "plugins-lossy"
    plugins.mkdir(exist_ok=True)
    shutil.copy2(lib, plugins / lib.name)
    out = tmp_path / "frames.npy"
    code = ("import sys, h5py, numpy as np\n"
            "f = h5py.File(sys.argv[1], 'r')\n"
            "np.save(sys.argv[2], f['/entry/data/data'][()])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDF5_PLUGIN")}
    env["HDF5_PLUGIN_PATH"] = str(plugins)
    p = subprocess.run([sys.executable, "-c", code, str(master), str(out)], env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    return np.load(out)


def output_frames(name, master, tmp_path):
    return read_lossy(master, tmp_path) if CASES[name][1][0] == "compress" else stack(master)


# ---------------------------------------------------------------- the rules, in numpy

def bin_frames(frames, mask, n, saturation):
    k, ny, nx = frames.shape
    top = np.iinfo(frames.dtype).max
    b = frames[:, : ny // n * n, : nx // n * n].reshape(k, ny // n, n, nx // n, n)
    m = mask[: ny // n * n, : nx // n * n].reshape(ny // n, n, nx // n, n)
    invalid = (b == top).any(axis=(2, 4)) | (m != 0).any(axis=(1, 3))[None]
    total = b.astype(np.uint64).sum(axis=(2, 4))
    if saturation is not None:
        hit = (b >= saturation).any(axis=(2, 4))
        total = np.where(hit, np.maximum(total, saturation * n * n), total)
    total = np.minimum(total, U32_MAX - 1)
    total[invalid] = U32_MAX
    return total.astype(np.uint32)


def bin_mask(mask, n):
    ny, nx = mask.shape
    m = mask[: ny // n * n, : nx // n * n].reshape(ny // n, n, nx // n, n)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(m, axis=3), axis=1)


def sum_frames(frames, k, saturation):
    groups = frames.shape[0] // k
    g = frames[: groups * k].reshape(groups, k, *frames.shape[1:])
    top = np.iinfo(frames.dtype).max
    total = g.astype(np.uint64).sum(axis=1)
    if saturation is not None:
        total = np.where((g >= saturation).any(axis=1), np.maximum(total, saturation * k), total)
    total = np.minimum(total, U32_MAX - 1)
    total[(g == top).any(axis=1)] = U32_MAX
    return total.astype(np.uint32)


def source_saturation(src_master):
    s = int(detector(src_master)["saturation_value"])
    return s if 0 < s <= U32_MAX else None


def expected(name, src_master):
    """(frames, mask, detector fields that must hold) of a case's output, from its source."""
    _, args = CASES[name]
    frames = stack(src_master)
    d = detector(src_master)
    mask, sat = d["pixel_mask"].astype(np.uint32), int(d["saturation_value"])
    top = U32_MAX - 1
    fields = {}
    if args[0] == "bin":
        n = int(args[args.index("--factor") + 1])
        want = bin_frames(frames, mask, n, source_saturation(src_master))
        mask = bin_mask(mask, n)
        fields = dict(x_pixel_size=d["x_pixel_size"] * n, y_pixel_size=d["y_pixel_size"] * n,
                      beam_center_x=d["beam_center_x"] / n, beam_center_y=d["beam_center_y"] / n,
                      saturation_value=min(sat * n * n, top), count_time=d["count_time"],
                      bit_depth_image=32, bit_depth_readout=32)
    elif args[0] == "sum":
        k = int(args[args.index("--frames") + 1])
        want = sum_frames(frames, k, source_saturation(src_master))
        fields = dict(x_pixel_size=d["x_pixel_size"], y_pixel_size=d["y_pixel_size"],
                      beam_center_x=d["beam_center_x"], beam_center_y=d["beam_center_y"],
                      saturation_value=min(sat * k, top), count_time=d["count_time"] * k,
                      frame_time=d["frame_time"] * k, bit_depth_image=32, bit_depth_readout=32)
    elif args[0] == "roi":
        x, y, w, h = ROI
        want = frames[:, y: y + h, x: x + w]
        mask = mask[y: y + h, x: x + w]
        fields = dict(x_pixel_size=d["x_pixel_size"], y_pixel_size=d["y_pixel_size"],
                      beam_center_x=d["beam_center_x"] - x,
                      beam_center_y=d["beam_center_y"] - y, saturation_value=sat,
                      bit_depth_image=8 * frames.dtype.itemsize)
    else:
        want = frames
        fields = dict(x_pixel_size=d["x_pixel_size"], y_pixel_size=d["y_pixel_size"],
                      beam_center_x=d["beam_center_x"], beam_center_y=d["beam_center_y"],
                      saturation_value=sat,
                      bit_depth_image=8 * frames.dtype.itemsize)
    return want, mask, fields


def check_lossy(got, src, q):
    assert got.shape == src.shape and got.dtype == src.dtype
    if q == 0:
        np.testing.assert_array_equal(got, src)
        return
    top = np.iinfo(src.dtype).max
    v = src.astype(np.float64)
    err = np.abs(got.astype(np.float64) - v)
    bad = err > (q / 2) * np.sqrt(v) + 1e-9
    assert not bad.any(), f"{bad.sum()} pixels over the bound, e.g. {np.argwhere(bad)[:3]}"
    exact = (src == 0) | (src == top) | (v < 4 / q**2)
    np.testing.assert_array_equal(got[exact], src[exact])
    valid = src != top
    for i in range(src.shape[0]):
        t_in = v[i][valid[i]].sum()
        t_out = got[i][valid[i]].astype(np.float64).sum()
        assert abs(t_out - t_in) <= 1e-4 * t_in, (i, t_in, t_out)
    # Something was quantised: the test sees lossy data, not a copy.
    assert (got != src).any()


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("name", sorted(CASES))
def test_values(name, sources, outputs, tmp_path):
    src, args = CASES[name]
    master, _ = outputs[name]
    got = output_frames(name, master, tmp_path)
    want, _, _ = expected(name, sources[src])
    if args[0] == "compress":
        check_lossy(got, want, float(args[args.index("--lossy") + 1].removeprefix("q=")))
    else:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        # The rules are exercised: masked bins / pixels, and saturation where the source has it.
        if args[0] in ("bin", "sum"):
            assert (got == U32_MAX).any()
            if src == "u16":
                assert ((got >= int(detector(master)["saturation_value"])) & (got < U32_MAX)).any()


def test_the_saturation_rule_is_what_makes_a_difference(sources):
    """Without the saturation rule some bins would differ: the u16 source is built for that."""
    frames = stack(sources["u16"])
    mask = detector(sources["u16"])["pixel_mask"].astype(np.uint32)
    assert not np.array_equal(bin_frames(frames, mask, 2, 40), bin_frames(frames, mask, 2, None))


@pytest.mark.parametrize("name", sorted(CASES))
def test_geometry(name, sources, outputs):
    src, args = CASES[name]
    master, _ = outputs[name]
    want, mask, fields = expected(name, sources[src])
    d = detector(master)
    for k, v in fields.items():
        assert d[k] == pytest.approx(v, rel=1e-12), k
    np.testing.assert_array_equal(d["pixel_mask"], mask)
    with h5py.File(master, "r") as f:
        m = f[f"{DET}/module"]
        assert tuple(m["data_origin"][()]) == (0, 0)
        assert tuple(m["data_size"][()]) == want.shape[1:]
        assert m["fast_pixel_direction"][()] == pytest.approx(fields["x_pixel_size"])
        w = f["/entry/sample/transformations/omega"][()]
        assert len(w) == want.shape[0]
    with h5py.File(sources[src], "r") as f:
        w0 = f["/entry/sample/transformations/omega"][()]
    step = w0[1] - w0[0]
    if args[0] == "sum":
        k = int(args[args.index("--frames") + 1])
        assert w == pytest.approx(w0[0] + np.arange(len(w)) * step * k)
    else:
        assert w == pytest.approx(w0)


def test_partial_group_is_left_out_and_said(outputs):
    # 5 frames summed by 2: two frames out, one left over.
    master, stderr = outputs["sum2-u16"]
    assert "the last 1 of 5 frames do not fill a group of 2" in stderr
    with h5py.File(master, "r") as f:
        assert f["/entry/data/data"].shape[0] == 2
    assert outputs["sum4-u32"][1] == ""


@pytest.mark.parametrize("name", sorted(CASES))
def test_nxmx_places_the_beam_at_the_beam_centre(name, sources, outputs):
    """Read as dxtbx reads NXmx (the nxmx package): the module's pixel steps are the output's
    pixel sizes, and the detector chain puts the beam at the output's beam centre, so every
    output pixel sits where its input pixels were."""
    nxmx = pytest.importorskip("nxmx")
    src, _ = CASES[name]
    master, _ = outputs[name]
    want, _, fields = expected(name, sources[src])
    with h5py.File(master) as f:
        det = nxmx.NXmx(f).entries[0].instruments[0].detectors[0]
        [module] = det.modules
        assert tuple(module.data_size) == want.shape[1:]
        px = module.fast_pixel_direction[()].to("mm").magnitude
        assert px == pytest.approx(fields["x_pixel_size"] * 1e3)
        chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
        origin = nxmx.get_cumulative_transformation(chain)[0, :3, 3]
        assert origin[0] / px == pytest.approx(fields["beam_center_x"])
        py = module.slow_pixel_direction[()].to("mm").magnitude
        assert py == pytest.approx(fields["y_pixel_size"] * 1e3)
        assert origin[1] / py == pytest.approx(fields["beam_center_y"])
        assert origin[2] == pytest.approx(150.0)
    # The output's pixel (0, 0) corner is the input's (an ROI's is its origin's).
    with h5py.File(sources[src]) as f:
        [m0] = nxmx.NXmx(f).entries[0].instruments[0].detectors[0].modules
        o0 = nxmx.get_cumulative_transformation(
            nxmx.get_dependency_chain(m0.fast_pixel_direction.depends_on))[0, :3, 3]
    shift = np.array(ROI[:2]) * 0.075 if CASES[name][1][0] == "roi" else np.zeros(2)
    assert origin[:2] == pytest.approx(o0[:2] - shift)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dxtbx_reads_the_geometry(name, sources, outputs):
    pytest.importorskip("dxtbx", reason="dxtbx is not installable from PyPI: run in a DIALS env")
    from dxtbx.model.experiment_list import ExperimentListFactory

    src, _ = CASES[name]
    master, _ = outputs[name]
    want, _, fields = expected(name, sources[src])
    [e] = ExperimentListFactory.from_filenames([str(master)])
    [panel] = list(e.detector)
    assert panel.get_image_size() == (want.shape[2], want.shape[1])
    px = fields["x_pixel_size"] * 1e3
    assert panel.get_pixel_size()[0] == pytest.approx(px)
    assert panel.get_beam_centre(e.beam.get_s0())[0] == pytest.approx(fields["beam_center_x"] * px)
    assert e.scan.get_num_images() == want.shape[0]


def xds(raw, mask):
    """The XDS plugin's convention: mask bit 0 -> -1, other bits -> -2, an unmasked pixel at the
    dtype's maximum -> 2^31 - 1, larger values clipped to 2^31 - 1."""
    top = np.iinfo(raw.dtype).max
    v = raw.astype(np.int64)
    out = np.where(v == top, I32_MAX, np.minimum(v, I32_MAX))
    out = np.where(mask != 0, -2, out)
    out = np.where(mask & 1 != 0, -1, out)
    return out.astype(np.int32)


@pytest.mark.parametrize("name", sorted(CASES))
def test_xds_plugin_reads_it(name, outputs, tmp_path):
    lib, host = _built("libhdrmx_xds.so", "hdrmx-xds-host",
                       build="cargo build --release -p hdrmx-xds -p hdrmx-xds-host")
    master, _ = outputs[name]
    raw = output_frames(name, master, tmp_path)
    mask = detector(master)["pixel_mask"]
    dump = tmp_path / "xds.bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDRMX_")}
    r = subprocess.run([str(host), str(lib), "open", str(master), "header", "threads", "2",
                        "shuffle", "3", "out", str(dump), "data", "all", "close"],
                       capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    header = next(line.split() for line in r.stdout.splitlines() if line.startswith("header"))
    err, nx, ny, nbytes, qx, _, frames = header[1:]
    assert (int(err), int(frames), int(ny), int(nx)) == (0, *raw.shape)
    assert int(nbytes) == raw.dtype.itemsize
    assert float(qx) == pytest.approx(detector(master)["x_pixel_size"])
    fails = [line for line in r.stdout.splitlines() if line.startswith("frame") and
             line.split()[2] != "0"]
    assert not fails, r.stderr[-2000:]
    got = np.fromfile(dump, "<i4").reshape(raw.shape)
    np.testing.assert_array_equal(got, xds(raw, mask))


@pytest.mark.parametrize("name", sorted(CASES))
def test_neggia_reads_the_same(name, outputs, tmp_path):
    hdrmx_dials = pytest.importorskip("hdrmx_dials", reason="hdrmx_dials is not installed")
    master, _ = outputs[name]
    raw = output_frames(name, master, tmp_path)
    ds = hdrmx_dials.open(master)
    assert ds.shape == raw.shape
    np.testing.assert_array_equal(ds.read_many(range(raw.shape[0])), raw)
    np.testing.assert_array_equal(ds.mask, detector(master)["pixel_mask"])


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("args, message", [
    (["bin", "{src}", "--factor", "5"], "--factor"),
    (["bin", "{src}", "--factor", "1"], "--factor"),
    (["bin", "{src}"], "--factor"),
    (["sum", "{src}", "--frames", "0"], "--frames"),
    (["sum", "{src}", "--frames", "6"], "fewer than one group of 6"),
    (["roi", "{src}", "--roi", "1,2,3"], "--roi"),
    (["roi", "{src}", "--roi", "1000,0,100,10"], "does not fit"),
    (["roi", "{src}", "--roi", "0,0,0,10"], "--roi"),
    (["compress", "{src}", "--lossy", "q=-1"], "--lossy"),
    (["compress", "{src}", "--lossy", "q=1", "--inner", "gzip"], "--inner"),
    (["bin", "{missing}", "--factor", "2"], "missing_master.h5"),
    (["bin", "{src}", "--factor", "2", "-o", "{dir}/notamaster.h5"], "NAME_master.h5"),
    (["bin", "{src}", "--factor", "2", "-o", "{src}"], "overwrite the input"),
])
def test_bad_arguments_fail_clearly(args, message, sources, tmp_path):
    fill = dict(src=sources["u16"], missing=tmp_path / "missing_master.h5", dir=tmp_path)
    args = [a.format(**fill) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out" / "y_master.h5")]
    r = run(*args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "panicked" not in r.stderr
    # Nothing half-written over the source.
    assert stack(sources["u16"]).shape[0] == 5
