"""The dxtbx Format classes of hdrmx_dials (dials-format/python/hdrmx_dials/format.py), against
dxtbx itself.

These need dxtbx, which PyPI does not carry in a usable form: run them in a DIALS environment,

    dials.python -m pip install ./dials-format
    dials.python -m pytest tests/python/test_dials_dxtbx.py

Elsewhere they skip, saying so; test_completed_masters_are_nxmx runs everywhere (with the nxmx
package) and checks the files the dxtbx tests use.

The corpus masters carry what frame readers need, not the geometry dxtbx builds its models from.
Each session copies the corpus to a temporary directory and completes every master copy with
NXmx geometry: an NXbeam with incident_wavelength, NXdetector_module groups (data_origin,
data_size, fast/slow_pixel_direction) on a detector distance, and an omega scan with one angle
per frame. Frames, masks and bit depths stay the corpus's. A DECTRIS FileWriter set is written
here as well (the corpus's frames are smaller than any EIGER module, which
FormatNXmxEigerFilewriter refuses): 512 x 1028 frames over three data files, with
eiger_fw_version, as uint32 and as uint16 with bit_depth_image 16 and bit_depth_readout 32.

What is checked:
- the entry points load, and dxtbx's registry (get_format_class_for_file, and
  ExperimentListFactory.from_filenames as dials.import calls it) picks FormatNXmxHdrmx for every
  corpus master and FormatNXmxEigerFilewriterHdrmx for the FileWriter sets;
- siblings keep their files: a DLS instrument name goes to FormatNXmxDLS, an electron probe to
  FormatNXmxED, the ESRF ID23-2 detector to its FileWriter class, also with our class as the
  format hint;
- get_raw_data and the static mask equal FormatNXmx's (FormatNXmxEigerFilewriter's for the
  FileWriter sets) for every frame, with the frames coming through hdrmx (not a fallback);
  where FormatNXmx cannot read a frame (the corpus's FileWriter-style masters without
  eiger_fw_version: it reads data_000001 alone) we return the frame h5py reads from the right
  file, and where h5py returns fill zeros (a missing VDS source) we raise;
- two detector modules: one array each, equal to FormatNXmx's;
- a frame stack other than /entry/data/data (NXdata signal naming another dataset) and float
  frames go through the parent, with equal results.
"""

import json
import os
import shutil
from pathlib import Path

try:
    import dxtbx  # noqa: F401  (first: as in a DIALS process, dxtbx sets up HDF5 plugins)

    NO_DXTBX = None
except Exception as e:  # noqa: BLE001
    NO_DXTBX = (
        f"dxtbx is not importable ({type(e).__name__}: {e}); run these in a DIALS environment: "
        "dials.python -m pip install ./dials-format && "
        "dials.python -m pytest tests/python/test_dials_dxtbx.py"
    )

import h5py
import hdf5plugin
import numpy as np
import pytest
from nxmx_geometry import DETECTOR, DISTANCE_MM, PIXEL_MM, complete_nxmx, group, set_attrs, stack_shape

needs_dxtbx = pytest.mark.skipif(NO_DXTBX is not None, reason=NO_DXTBX or "")

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "files"
MASTERS = sorted(f["file"] for f in json.loads((CORPUS / "manifest.json").read_text())["files"]
                 if f.get("masters"))
# FileWriter-style corpus masters: /entry/data/data_NNNNNN links, first file's frame count.
FIRST_FILE = {"eiger1_master.h5": 4, "eiger2_master.h5": 3}
MISSING = {"vds_missing.h5": {3, 4, 5}}


# ---------------------------------------------------------------- files

FW_NY, FW_NX = 512, 1028          # an EIGER2 module (slow, fast), as dxtbx knows it


def write_filewriter(d, prefix, dtype, bit_depth_image, bit_depth_readout, per_file=(2, 2, 1)):
    """A DECTRIS FileWriter set (master + data files) of 512 x 1028 frames, completed for dxtbx.
    Returns (master path, frames, mask)."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(bit_depth_image + dtype.itemsize)
    n = sum(per_file)
    frames = rng.poisson(0.5, (n, FW_NY, FW_NX)).astype(dtype)
    mask = np.zeros((FW_NY, FW_NX), np.uint32)
    mask[:, 500:512] = 1                                   # a gap
    mask[100, 100], mask[200, 300] = 2, 1 << 4             # dead, noisy
    frames[:, mask != 0] = np.iinfo(dtype).max
    tops = [2**b - k for b in (16, 31, 32) for k in (1, 2, 3)] + [np.iinfo(dtype).max - 1]
    for i in range(n):
        pos = rng.choice(FW_NY * FW_NX, len(tops), replace=False)
        frames[i].flat[pos] = np.array([t % 2**64 for t in tops], np.uint64).astype(dtype)
    first = 0
    for k, count in enumerate(per_file, 1):
        with h5py.File(d / f"{prefix}_data_{k:06d}.h5", "w") as f:
            data = group(group(f, "entry", "NXentry"), "data", "NXdata")
            ds = data.create_dataset("data", data=frames[first:first + count],
                                     chunks=(1, FW_NY, FW_NX), **hdf5plugin.Bitshuffle())
            set_attrs(ds, image_nr_low=np.uint32(first + 1), image_nr_high=np.uint32(first + count))
        first += count
    master = d / f"{prefix}_master.h5"
    with h5py.File(master, "w") as f:
        entry = group(f, "entry", "NXentry")
        entry["definition"] = np.bytes_("NXmx")
        det = group(group(entry, "instrument", "NXinstrument"), "detector", "NXdetector")
        for name, value, units in (("x_pixel_size", 7.5e-5, "m"), ("y_pixel_size", 7.5e-5, "m"),
                                   ("count_time", 0.0099, "s"), ("frame_time", 0.01, "s"),
                                   ("beam_center_x", 514.0, "pixel"),
                                   ("beam_center_y", 256.0, "pixel"),
                                   ("sensor_thickness", 4.5e-4, "m")):
            set_attrs(det.create_dataset(name, data=np.float32(value)), units=np.bytes_(units))
        det["bit_depth_image"] = np.uint32(bit_depth_image)
        det["bit_depth_readout"] = np.uint32(bit_depth_readout)
        det["saturation_value"] = np.uint32(min(np.iinfo(dtype).max - 1, 10**6))
        det["sensor_material"] = np.bytes_("Si")
        det["description"] = np.bytes_("EIGER2 Si 1M (synthetic, hdrmx tests)")
        spec = group(det, "detectorSpecific", "NXcollection")
        spec["eiger_fw_version"] = np.bytes_("release-2022.1.2")
        spec["nimages"] = np.uint64(n)
        spec["ntrigger"] = np.uint64(1)
        spec["x_pixels_in_detector"] = np.uint32(FW_NX)
        spec["y_pixels_in_detector"] = np.uint32(FW_NY)
        spec.create_dataset("pixel_mask", data=mask, chunks=(FW_NY, FW_NX), compression="gzip")
        det["pixel_mask"] = h5py.SoftLink(f"{DETECTOR}/detectorSpecific/pixel_mask")
        group(group(entry, "sample", "NXsample"), "goniometer", "NXtransformations")
        data = group(entry, "data", "NXdata")
        for k in range(1, len(per_file) + 1):
            data[f"data_{k:06d}"] = h5py.ExternalLink(f"{prefix}_data_{k:06d}.h5",
                                                      "/entry/data/data")
    complete_nxmx(master)
    return master, frames, mask


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """The completed corpus copy and FileWriter sets: name -> path."""
    d = tmp_path_factory.mktemp("nxmx")
    shutil.copytree(CORPUS, d, dirs_exist_ok=True)
    paths = {name: complete_nxmx(d / name) for name in MASTERS}
    for prefix, dtype, image, readout in (("fw32", "<u4", 32, 32), ("fw16", "<u2", 16, 32)):
        paths[prefix], _, _ = write_filewriter(d, prefix, dtype, image, readout)
    return paths


def variant(files, name, new_name, edit):
    """A copy of a completed master (same directory, so its data files resolve), edited."""
    src = files[name]
    dst = src.with_name(new_name)
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def dxtbx_rule(raw, bit_depth):
    """FormatNXmx's frame, written out: int32 as numpy casts, top - 1 and top - 2 as -1, -2."""
    v = raw.astype(np.int32)
    if bit_depth:
        top = 2**31 if bit_depth == 32 else 2**bit_depth
        v[v == top - 1] = -1
        v[v == top - 2] = -2
    return v


def h5py_frame(path, i):
    """Frame i of a master as h5py reads its frame stack (links in order, or the dataset)."""
    with h5py.File(path) as f:
        data = f["/entry/data"]
        if "data" in data:
            return data["data"][i]
        for k in sorted(k for k in data if k.startswith("data_")):
            if i < data[k].shape[0]:
                return data[k][i]
            i -= data[k].shape[0]
    raise IndexError(i)


# ---------------------------------------------------------------- everywhere: the files

def test_completed_masters_are_nxmx(files):
    """The geometry written above, read the way dxtbx reads it, through the nxmx package."""
    nxmx = pytest.importorskip("nxmx")
    for name, path in files.items():
        with h5py.File(path) as f:
            n, ny, nx = stack_shape(f)
            entry = nxmx.NXmx(f).entries[0]
            inst = entry.instruments[0]
            assert inst.beams[0].incident_wavelength.to("angstrom").magnitude == 0.9795
            det = inst.detectors[0]
            assert det.sensor_material in ("Si", "CdTe")
            assert det.sensor_thickness.to("mm").magnitude > 0
            [module] = det.modules
            assert tuple(module.data_origin) == (0, 0) and tuple(module.data_size) == (ny, nx)
            assert module.fast_pixel_direction[()].to("mm").magnitude == PIXEL_MM
            chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
            assert [t.path.rsplit("/", 1)[1] for t in chain] == ["module_offset", "det_z"]
            a = nxmx.get_cumulative_transformation(chain)
            assert a[0, 2, 3] == pytest.approx(DISTANCE_MM), name
            scan = nxmx.get_dependency_chain(entry.samples[0].depends_on)
            assert len(scan[0]) == n and scan[0].transformation_type == "rotation"
            axes = nxmx.get_rotation_axes(scan)
            assert axes.is_scan_axis.tolist() == [True]
            assert entry.data[0].path == "/entry/data"


# ---------------------------------------------------------------- with dxtbx

def _classes():
    from dxtbx.format.FormatNXmx import FormatNXmx
    from dxtbx.format.FormatNXmxEigerFilewriter import FormatNXmxEigerFilewriter

    from hdrmx_dials.format import FormatNXmxEigerFilewriterHdrmx, FormatNXmxHdrmx

    return FormatNXmx, FormatNXmxEigerFilewriter, FormatNXmxHdrmx, FormatNXmxEigerFilewriterHdrmx


def _arrays(raw):
    return [d.as_numpy_array() for d in raw]


def _masks(fmt):
    m = fmt.get_static_mask()
    return None if m is None else [x.as_numpy_array() for x in m]


def _ours_for(name):
    return "FormatNXmxEigerFilewriterHdrmx" if name.startswith("fw") else "FormatNXmxHdrmx"


@needs_dxtbx
def test_registry_loads_our_classes():
    from dxtbx.format import Registry

    _, _, ours, ours_fw = _classes()
    index = Registry.get_format_class_index()
    assert index["FormatNXmxHdrmx"][1] == ("FormatNXmx",)
    assert index["FormatNXmxEigerFilewriterHdrmx"][1] == ("FormatNXmxEigerFilewriter",)
    assert Registry.get_format_class_for("FormatNXmxHdrmx") is ours
    assert Registry.get_format_class_for("FormatNXmxEigerFilewriterHdrmx") is ours_fw
    dag = Registry.get_format_class_dag()
    assert "FormatNXmxHdrmx" in dag["FormatNXmx"]
    assert "FormatNXmxEigerFilewriterHdrmx" in dag["FormatNXmxEigerFilewriter"]


@needs_dxtbx
def test_registry_and_dials_import_choose_hdrmx(files):
    from dxtbx.format import Registry
    from dxtbx.model.experiment_list import ExperimentListFactory

    for name, path in files.items():
        want = Registry.get_format_class_for(_ours_for(name))
        assert Registry.get_format_class_for_file(str(path)) is want, name
        experiments = ExperimentListFactory.from_filenames([str(path)])
        assert len(experiments) == 1, name
        assert experiments[0].imageset.get_format_class() is want, name


@needs_dxtbx
def test_siblings_keep_their_files(files):
    from dxtbx.format import Registry

    def named(f, text):
        f["/entry/instrument/name"] = np.bytes_(text)

    def electrons(f):
        group(f["/entry"], "source", "NXsource")["probe"] = np.bytes_("electron")

    def esrf(f):
        f[f"{DETECTOR}/detector_number"] = np.bytes_("E-18-0133")

    cases = [
        (variant(files, "dls.h5", "i24_master.h5", lambda f: named(f, "DIAMOND BEAMLINE I24")),
         "FormatNXmxDLS"),
        (variant(files, "ib_a_master.h5", "ed_master.h5", electrons), "FormatNXmxED"),
        (variant(files, "fw32", "esrf_master.h5", esrf), "FormatNXmxEigerFilewriterESRFID232"),
    ]
    for path, sibling in cases:
        for hint in (None, "FormatNXmxHdrmx", "FormatNXmxEigerFilewriterHdrmx"):
            got = Registry.get_format_class_for_file(str(path), format_hint=hint)
            assert got.__name__ == sibling, (path.name, hint, got)


def _compare(ours, ref, name, path, raw_rule_bit_depth=None):
    """Every frame and the static mask of `ours` against the reference instance `ref`."""
    assert ours._hdrmx is not None, f"{name}: frames go through h5py"
    assert ours.get_num_images() == ref.get_num_images()
    assert ours.get_detector() == ref.get_detector() and ours.get_scan() == ref.get_scan()
    mine, theirs = _masks(ours), _masks(ref)
    assert (mine is None) == (theirs is None), name
    if mine is not None:
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)
    for i in range(ours.get_num_images()):
        if i in MISSING.get(name, ()):
            # h5py reads the missing source's fill value; hdrmx says what is missing.
            assert not any(a.any() for a in _arrays(ref.get_raw_data(i)))
            import hdrmx_dials

            with pytest.raises(hdrmx_dials.Error, match=f"frame {i}:.*vds_missing_000002.h5"):
                ours.get_raw_data(i)
            continue
        got = _arrays(ours.get_raw_data(i))
        assert all(a.dtype == np.int32 and a.flags.c_contiguous for a in got)
        if i >= FIRST_FILE.get(name, 1 << 60):
            # FormatNXmx reads data_000001 alone and cannot give this frame; hdrmx reads the
            # frame from the file that has it, converted by dxtbx's rule.
            with pytest.raises(Exception):
                ref.get_raw_data(i)
            want = [dxtbx_rule(h5py_frame(path, i), raw_rule_bit_depth)]
        else:
            want = _arrays(ref.get_raw_data(i))
        assert len(got) == len(want), name
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} frame {i}")


@needs_dxtbx
@pytest.mark.parametrize("name", MASTERS)
def test_raw_data_and_mask_equal_formatnxmx(files, name):
    FormatNXmx, _, ours, _ = _classes()
    path = str(files[name])
    ref, mine = FormatNXmx(path), ours(path)
    _compare(mine, ref, name, path, ref._bit_depth_readout)


@needs_dxtbx
@pytest.mark.parametrize("prefix", ["fw32", "fw16"])
def test_raw_data_and_mask_equal_filewriter_class(files, prefix):
    FormatNXmx, FormatNXmxEigerFilewriter, _, ours_fw = _classes()
    path = str(files[prefix])
    ref, mine = FormatNXmxEigerFilewriter(path), ours_fw(path)
    _compare(mine, ref, prefix, path)
    assert mine._hdrmx.metadata["dxtbx_bit_depth"] == (32 if prefix == "fw32" else 16)
    if prefix == "fw16":
        # The FileWriter class applies bit_depth_image (16): 65535 is -1 there, and stays
        # 65535 for FormatNXmx, which applies bit_depth_readout (32).
        ours_frame = _arrays(mine.get_raw_data(0))[0]
        base = FormatNXmx(path)
        assert (ours_frame == -1).any()
        assert (_arrays(base.get_raw_data(0))[0][ours_frame == -1] == 65535).all()


@needs_dxtbx
def test_imagesets_read_the_same(files):
    """What dials.import makes of a file, with our class and with FormatNXmx: the same raw
    data and the same masks (static mask and trusted range)."""
    from dxtbx.model.experiment_list import ExperimentListFactory

    FormatNXmx, _, _, _ = _classes()
    path = os.path.abspath(files["dls.nxs"])
    ours = ExperimentListFactory.from_filenames([path])[0].imageset
    ref = FormatNXmx.get_imageset(path)
    assert ours.get_format_class().__name__ == "FormatNXmxHdrmx" and len(ours) == len(ref)
    for i in range(len(ours)):
        for a, b in zip(_arrays(ours.get_raw_data(i)), _arrays(ref.get_raw_data(i))):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(ours.get_mask(i), ref.get_mask(i)):
            np.testing.assert_array_equal(a.as_numpy_array(), b.as_numpy_array())


@needs_dxtbx
def test_two_modules(files, tmp_path):
    FormatNXmx, _, ours, _ = _classes()
    d = tmp_path / "two"
    shutil.copytree(CORPUS, d)
    path = complete_nxmx(d / "dls.h5", modules=[(0, 0, 24, 64), (24, 0, 24, 64)])
    ref, mine = FormatNXmx(str(path)), ours(str(path))
    assert mine._hdrmx_slices is not None
    for i in range(mine.get_num_images()):
        got, want = _arrays(mine.get_raw_data(i)), _arrays(ref.get_raw_data(i))
        assert len(got) == len(want) == 2
        for a, b in zip(got, want):
            assert a.shape == (24, 64)
            np.testing.assert_array_equal(a, b)


@needs_dxtbx
def test_other_frame_stacks_go_through_the_parent(files):
    FormatNXmx, _, ours, _ = _classes()

    def signal_raw(f):
        # /entry/data/raw is /entry/data/data with its halves swapped: dxtbx reads the signal.
        f["/entry/data"].attrs["signal"] = "raw"

    def floats(f):
        data = f["/entry/data/data"][()].astype(np.float32)
        del f["/entry/data/data"]
        f["/entry/data/data"] = data
        # Float frames have no top values to mark.
        del f[f"{DETECTOR}/bit_depth_readout"]

    for path in (variant(files, "vds_samefile.h5", "signal_raw.h5", signal_raw),
                 variant(files, "dls.h5", "floats.h5", floats)):
        ref, mine = FormatNXmx(str(path)), ours(str(path))
        assert mine._hdrmx is None, path.name
        for i in range(mine.get_num_images()):
            for a, b in zip(_arrays(mine.get_raw_data(i)), _arrays(ref.get_raw_data(i))):
                np.testing.assert_array_equal(a, b)
