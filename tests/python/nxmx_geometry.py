"""NXmx geometry for test and benchmark masters: what dxtbx builds its models from.

complete_nxmx(path) adds to a master an NXbeam (incident_wavelength), NXdetector_module groups
(data_origin, data_size, fast/slow_pixel_direction on a module offset) on a detector distance,
and an omega rotation with one angle per frame. Frames, masks and bit depths are left alone.
"""

import h5py
import numpy as np

DETECTOR = "/entry/instrument/detector"
PIXEL_MM = 0.075
DISTANCE_MM = 120.0


def set_attrs(obj, **attrs):
    for k, v in attrs.items():
        obj.attrs[k] = v
    return obj


def group(parent, name, nx_class):
    return set_attrs(parent.require_group(name), NX_class=nx_class)


def stack_shape(f):
    """(frames, ny, nx) of a master's frame stack: /entry/data/data, or the data_NNNNNN links."""
    data = f["/entry/data"]
    if "data" in data:
        return data["data"].shape
    parts = [data[k].shape for k in sorted(data) if k.startswith("data_")]
    return (sum(p[0] for p in parts), *parts[0][1:])


def complete_nxmx(path, modules=None):
    """Adds the NXmx geometry dxtbx needs to the master at `path` and returns the path.
    `modules`: (y0, x0, ny, nx) boxes, one NXdetector_module each; by default one module over
    the whole frame. The beam hits the detector's beam_center_x/y (pixels), else the middle."""
    with h5py.File(path, "r+") as f:
        n, ny, nx = stack_shape(f)
        det = f[DETECTOR]
        bx = float(det["beam_center_x"][()]) if "beam_center_x" in det else nx / 2
        by = float(det["beam_center_y"][()]) if "beam_center_y" in det else ny / 2
        beam = group(f["/entry/instrument"], "beam", "NXbeam")
        set_attrs(beam.create_dataset("incident_wavelength", data=0.9795), units="angstrom")
        det["depends_on"] = f"{DETECTOR}/transformations/det_z"
        t = group(det, "transformations", "NXtransformations")
        set_attrs(t.create_dataset("det_z", data=[DISTANCE_MM]), units="mm",
                  transformation_type="translation", vector=[0.0, 0.0, 1.0], depends_on=".")
        for k, (y0, x0, h, w) in enumerate(modules or [(0, 0, ny, nx)]):
            m = group(det, f"module{k}", "NXdetector_module")
            m["data_origin"] = np.array([y0, x0], np.int32)
            m["data_size"] = np.array([h, w], np.int32)
            # McStas: fast pixels along -x, slow along -y; the module's first pixel offset so
            # that the beam centre is on the z axis.
            offset = [(bx - x0) * PIXEL_MM, (by - y0) * PIXEL_MM, 0.0]
            set_attrs(m.create_dataset("module_offset", data=0.0), units="mm",
                      transformation_type="translation", vector=[1.0, 0.0, 0.0], offset=offset,
                      depends_on=f"{DETECTOR}/transformations/det_z")
            for name, vector in (("fast_pixel_direction", [-1.0, 0.0, 0.0]),
                                 ("slow_pixel_direction", [0.0, -1.0, 0.0])):
                set_attrs(m.create_dataset(name, data=PIXEL_MM), units="mm",
                          transformation_type="translation", vector=vector,
                          offset=[0.0, 0.0, 0.0], depends_on=f"{DETECTOR}/module{k}/module_offset")
        sample = f["/entry/sample"]
        sample["depends_on"] = "/entry/sample/transformations/omega"
        st = group(sample, "transformations", "NXtransformations")
        set_attrs(st.create_dataset("omega", data=np.arange(n) * 0.1), units="deg",
                  transformation_type="rotation", vector=[-1.0, 0.0, 0.0], depends_on=".")
    return path
