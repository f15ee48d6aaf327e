"""NXmx datasets written by durin-rs (through `hdrmx simulate`), read back by others.

`hdrmx simulate` writes a master and data files with libhdf5 (chunks written directly, filters
registered in-process). Here they are read by h5py + hdf5plugin (the reference bitshuffle/LZ4),
by h5dump (HDF5 1.10, our filter plugins on HDF5_PLUGIN_PATH) and by neggia-rs (through
hdrmx_dials, when installed): the frames must be equal everywhere. The metadata is checked
against the expectation below, written out by hand from what `hdrmx simulate` documents (a
75 um EIGER2 CdTe detector 150 mm from the sample, beam at the frame centre, 0.9795 A, omega
from 0 in 0.1 degree steps), not read from hdrmx.

The binary comes from $HDRMX_BIN, else target/{release,debug}/hdrmx; filter plugins from
$HDRMX_PLUGIN_DIR, else target/release.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the reference filters with h5py)
import numpy as np
import pytest

from built import HDRMX_MISSING, hdrmx_binary, plugin_dir

ROOT = Path(__file__).resolve().parents[2]
DET = "/entry/instrument/detector"
FRAMES = 7
PER_FILE = 3
NX, NY = 1028, 1062  # EIGER2 1M


HDRMX = hdrmx_binary()
if HDRMX is None:
    pytest.skip(HDRMX_MISSING, allow_module_level=True)


@pytest.fixture(scope="module", params=[
    ("vds", "uint32", "bslz4"), ("links", "uint16", "bslz4"), ("vds", "uint16", "lz4"),
], ids=lambda p: "-".join(p))
def written(request, tmp_path_factory):
    layout, pixel, codec = request.param
    out = tmp_path_factory.mktemp(f"durin-{layout}-{pixel}-{codec}")
    args = [HDRMX, "simulate", "--detector", "eiger2-1m", "--frames", str(FRAMES),
            "--frames-per-file", str(PER_FILE), "--pixel", pixel, "--codec", codec,
            "--out", str(out), "--name", "x", "--spots", "50"]
    if layout == "links":
        args.append("--links")
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    return out, layout, pixel, codec


def _frames(master):
    with h5py.File(master, "r") as f:
        d = f["/entry/data"]
        if "data" in d:
            return d["data"][()]
        keys = sorted(k for k in d if re.fullmatch(r"data_\d{6}", k))
        return np.concatenate([d[k][()] for k in keys])


def test_files_and_truth(written):
    out, layout, pixel, codec = written
    names = sorted(p.name for p in out.iterdir())
    assert names == ["x_data_000001.h5", "x_data_000002.h5", "x_data_000003.h5",
                     "x_master.h5", "x_truth.json"]
    truth = json.loads((out / "x_truth.json").read_text())
    assert truth["frames"] == FRAMES and truth["layout"] == layout
    assert truth["pixel_type"] == pixel and len(truth["truth"]) == FRAMES
    assert all(len(t["spots"]) == 50 for t in truth["truth"])
    with h5py.File(out / "x_data_000003.h5", "r") as f:
        d = f["/entry/data/data"]
        assert d.shape == (FRAMES - 2 * PER_FILE, NY, NX) and d.chunks == (1, NY, NX)
        assert d.attrs["image_nr_low"] == 7 and d.attrs["image_nr_high"] == 7
        filters = d.id.get_create_plist()
        fid, _, cd, _ = filters.get_filter(0)
        if codec == "bslz4":
            assert fid == 32008 and tuple(cd[:3]) == (0, 5, np.dtype(pixel).itemsize)
            assert cd[4] == 2
        else:
            assert fid == 32004


def test_h5py_frames(written):
    out, layout, pixel, _ = written
    frames = _frames(out / "x_master.h5")
    assert frames.shape == (FRAMES, NY, NX) and frames.dtype == np.dtype(pixel)
    # Simulated frames: Poisson background, spots; no two frames alike, none empty.
    assert all(frames[i].sum() > 0 for i in range(FRAMES))
    assert not np.array_equal(frames[0], frames[1])
    # The data files hold the same frames the master shows, in order.
    for k in range(3):
        with h5py.File(out / f"x_data_{k + 1:06d}.h5", "r") as f:
            np.testing.assert_array_equal(f["/entry/data/data"][()],
                                          frames[k * PER_FILE:(k + 1) * PER_FILE])


def test_metadata(written):
    out, _, pixel, _ = written
    top = np.iinfo(np.dtype(pixel)).max
    with h5py.File(out / "x_master.h5", "r") as f:
        assert f["/entry/definition"][()] == b"NXmx"
        assert f["/entry"].attrs["NX_class"] == b"NXentry"
        assert f["/entry/data"].attrs["signal"] == b"data"
        w = f["/entry/instrument/beam/incident_wavelength"]
        assert w[()] == pytest.approx(0.9795) and w.attrs["units"] == b"angstrom"
        det = f[DET]
        assert det.attrs["NX_class"] == b"NXdetector"
        assert det["sensor_material"][()] == b"CdTe"
        assert det["sensor_thickness"][()] == pytest.approx(750e-6)
        assert det["x_pixel_size"][()] == det["y_pixel_size"][()] == pytest.approx(75e-6)
        assert det["beam_center_x"][()] == pytest.approx(NX / 2)
        assert det["beam_center_y"][()] == pytest.approx(NY / 2)
        assert det["bit_depth_readout"][()] == 8 * np.dtype(pixel).itemsize
        assert det["saturation_value"][()] == min(top - 1, 2**31 - 1)
        assert det["count_time"][()] < det["frame_time"][()]
        mask = det["pixel_mask"][()]
        assert mask.shape == (NY, NX) and mask.dtype == np.uint32
        # Gaps between the two modules (rows 512..549) carry the gap bit; module pixels do not.
        assert (mask[512:550, :] & 1).all() and not (mask[:512, :] & 1).any()
        # The chain: detector -> translation (distance along the beam) -> "."
        t = f[det["depends_on"][()].decode()]
        assert t[()] == pytest.approx(0.15) and t.attrs["depends_on"] == b"."
        assert t.attrs["transformation_type"] == b"translation"
        np.testing.assert_allclose(t.attrs["vector"], [0, 0, 1])
        mod = det["module"]
        assert mod.attrs["NX_class"] == b"NXdetector_module"
        np.testing.assert_array_equal(mod["data_origin"][()], [0, 0])
        np.testing.assert_array_equal(mod["data_size"][()], [NY, NX])
        fast, slow, off = (mod[k] for k in ("fast_pixel_direction", "slow_pixel_direction",
                                            "module_offset"))
        np.testing.assert_allclose(fast.attrs["vector"], [-1, 0, 0])
        np.testing.assert_allclose(slow.attrs["vector"], [0, -1, 0])
        assert fast[()] == pytest.approx(75e-6) and slow[()] == pytest.approx(75e-6)
        assert fast.attrs["depends_on"].decode() == off.name
        assert off.attrs["depends_on"].decode() == t.name
        # The beam meets the detector at the beam centre: origin + bc * pixel along -x, -y is 0.
        origin = np.asarray(off.attrs["offset"]) + off[()] * np.asarray(off.attrs["vector"])
        hit = origin[:2] - np.array([NX / 2, NY / 2]) * 75e-6
        np.testing.assert_allclose(hit, [0, 0], atol=1e-12)
        # The scan: omega from 0 in 0.1 degree steps, one value per frame, a rotation.
        s = f["/entry/sample"]
        om = f[s["depends_on"][()].decode()]
        assert om.attrs["transformation_type"] == b"rotation" and om.attrs["units"] == b"deg"
        assert om.attrs["depends_on"] == b"."
        np.testing.assert_allclose(om[()], np.arange(FRAMES) * 0.1, atol=1e-12)


H5DUMP = shutil.which("h5dump")


@pytest.mark.skipif(H5DUMP is None, reason="h5dump not found (apt-get install hdf5-tools)")
def test_h5dump_reads_a_frame(written, tmp_path):
    out, layout, _, _ = written
    plugins = plugin_dir()
    ours = tmp_path / "plugins"
    ours.mkdir()
    for name in ("libhdrmx_h5bshuf.so", "libhdrmx_h5lz4.so"):
        if not (plugins / name).is_file():
            pytest.skip(f"{name} not built in {plugins}")
        shutil.copy2(plugins / name, ours / name)
    env = dict(os.environ, HDF5_PLUGIN_PATH=str(ours))
    # Frame 4 is the second frame of the second data file.
    path = "/entry/data/data" if layout == "vds" else "/entry/data/data_000002"
    first = "4" if layout == "vds" else "1"
    r = subprocess.run([H5DUMP, "-d", f"{path}[{first},500,600;;1,1,1;1,3,8]", "-y", "-w", "0",
                        str(out / "x_master.h5")], env=env, capture_output=True, text=True,
                       timeout=300, cwd=out)
    assert r.returncode == 0, r.stderr
    body = r.stdout.split("DATA {", 1)[1].split("}", 1)[0]
    got = [int(v) for v in re.findall(r"\d+", body)]
    want = _frames(out / "x_master.h5")[4, 500:503, 600:608].ravel().tolist()
    assert got == want


def test_neggia_reads_the_same(written):
    hdrmx_dials = pytest.importorskip("hdrmx_dials", reason="hdrmx_dials is not installed")
    out, _, _, _ = written
    ds = hdrmx_dials.open(out / "x_master.h5")
    frames = _frames(out / "x_master.h5")
    assert ds.shape == frames.shape
    for i in range(FRAMES):
        np.testing.assert_array_equal(ds.read(i), frames[i])
    with h5py.File(out / "x_master.h5", "r") as f:
        np.testing.assert_array_equal(ds.mask, f[f"{DET}/pixel_mask"][()])


def _xds_built():
    d = plugin_dir()
    lib, host = d / "libhdrmx_xds.so", d / "hdrmx-xds-host"
    return (lib, host) if lib.is_file() and host.is_file() else None


def test_xds_plugin_reads_it(written, tmp_path):
    built = _xds_built()
    if built is None:
        pytest.skip("libhdrmx_xds.so / hdrmx-xds-host not built")
    lib, host = built
    out, _, pixel, _ = written
    dump = tmp_path / "frames.bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDRMX_")}
    r = subprocess.run([str(host), str(lib), "open", str(out / "x_master.h5"), "header",
                        "threads", "1", "shuffle", "0", "out", str(dump), "data", "all",
                        "close"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    header = next(line.split() for line in r.stdout.splitlines() if line.startswith("header"))
    err, nx, ny, nbytes, qx, qy, frames = header[1:]
    assert (int(err), int(nx), int(ny), int(frames)) == (0, NX, NY, FRAMES)
    assert int(nbytes) == np.dtype(pixel).itemsize
    assert float(qx) == pytest.approx(75e-6) and float(qy) == pytest.approx(75e-6)
    got = np.fromfile(dump, "<i4").reshape(FRAMES, NY, NX)
    # The XDS convention, written out: gap bit -> -1, other mask bits -> -2, an unmasked pixel
    # at the type's maximum -> 2^31 - 1, anything else itself.
    raw = _frames(out / "x_master.h5")
    with h5py.File(out / "x_master.h5", "r") as f:
        mask = f[f"{DET}/pixel_mask"][()]
    want = np.minimum(raw.astype(np.int64), 2**31 - 1)
    want[raw == np.iinfo(raw.dtype).max] = 2**31 - 1
    want[:, mask != 0] = -2
    want[:, (mask & 1) != 0] = -1
    np.testing.assert_array_equal(got, want.astype(np.int32))


def test_nxmx_reads_the_geometry(written):
    """The master read the way dxtbx reads it (the nxmx package): the beam meets the detector at
    the beam centre, 150 mm along the beam; omega is the one scan axis."""
    nxmx = pytest.importorskip("nxmx")
    out, _, _, _ = written
    with h5py.File(out / "x_master.h5") as f:
        entry = nxmx.NXmx(f).entries[0]
        inst = entry.instruments[0]
        assert inst.beams[0].incident_wavelength.to("angstrom").magnitude == pytest.approx(0.9795)
        det = inst.detectors[0]
        assert det.sensor_material == "CdTe"
        assert det.sensor_thickness.to("mm").magnitude == pytest.approx(0.75)
        [module] = det.modules
        assert tuple(module.data_origin) == (0, 0) and tuple(module.data_size) == (NY, NX)
        assert module.fast_pixel_direction[()].to("mm").magnitude == pytest.approx(0.075)
        assert module.slow_pixel_direction[()].to("mm").magnitude == pytest.approx(0.075)
        chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
        assert [t.path.rsplit("/", 1)[1] for t in chain] == ["module_offset", "translation"]
        a = nxmx.get_cumulative_transformation(chain)
        origin = a[0, :3, 3]  # mm
        assert origin[2] == pytest.approx(150.0)
        # Fast pixels run along -x, slow along -y: the beam (x = y = 0) is at the beam centre.
        assert origin[0] / 0.075 == pytest.approx(NX / 2)
        assert origin[1] / 0.075 == pytest.approx(NY / 2)
        scan = nxmx.get_dependency_chain(entry.samples[0].depends_on)
        assert len(scan[0]) == FRAMES and scan[0].transformation_type == "rotation"
        axes = nxmx.get_rotation_axes(scan)
        assert axes.is_scan_axis.tolist() == [True]
        assert entry.data[0].path == "/entry/data"


def test_dxtbx_understands_it(written):
    """dxtbx (when it imports: it is not installable from PyPI, so run this in a DIALS
    environment) makes one experiment with the beam, detector and scan written."""
    pytest.importorskip("dxtbx", reason="dxtbx is not installable from PyPI: run in a DIALS env")
    from dxtbx.model.experiment_list import ExperimentListFactory

    out, _, _, _ = written
    expts = ExperimentListFactory.from_filenames([str(out / "x_master.h5")])
    assert len(expts) == 1
    e = expts[0]
    assert e.beam.get_wavelength() == pytest.approx(0.9795)
    [panel] = list(e.detector)
    assert panel.get_image_size() == (NX, NY)
    assert panel.get_pixel_size() == pytest.approx((0.075, 0.075))
    assert panel.get_distance() == pytest.approx(150.0)
    # The beam meets the detector at the beam centre (mm from the first pixel's corner).
    assert panel.get_beam_centre(e.beam.get_s0()) == pytest.approx((NX / 2 * 0.075, NY / 2 * 0.075))
    assert e.scan.get_image_range() == (1, FRAMES)
    assert e.scan.get_oscillation() == pytest.approx((0.0, 0.1))
    assert e.goniometer is not None
    assert e.imageset.get_raw_data(0)[0].all()[0] == NY
