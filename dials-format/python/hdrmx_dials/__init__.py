"""EIGER/NXmx frames for DIALS through the hdrmx Rust reader (neggia-rs: no libhdf5, no GIL).

    import hdrmx_dials
    ds = hdrmx_dials.open("x_master.h5")     # *_master.h5, .nxs, any NXmx file
    ds.shape, ds.dtype, ds.mask, ds.metadata
    frame = ds.read(0)                       # new (ny, nx) array of the stored type
    ds.read_into(1, frame)                   # into an array of your own
    stack = ds.read_many(range(10))          # (10, ny, nx), decoded in parallel

    ds = hdrmx_dials.open("x_master.h5", dxtbx=True, bit_depth=32)
    ds.read(0)                               # int32, exactly as dxtbx's FormatNXmx returns it

A file that cannot be read raises ``hdrmx_dials.Error`` (an ``OSError``) naming the file and
frame. The dxtbx Format classes live in ``hdrmx_dials.format``; dxtbx finds them through this
package's ``dxtbx.format`` entry points (importing them needs dxtbx).
"""

from ._native import Dataset, Error, UnsupportedError, __version__, open

__all__ = ["Dataset", "Error", "UnsupportedError", "__version__", "open"]
