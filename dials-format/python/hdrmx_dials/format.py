"""dxtbx Format classes whose frames come from the hdrmx Rust reader.

dxtbx loads these through the ``dxtbx.format`` entry points of this package:

- ``FormatNXmxHdrmx``, a child of ``FormatNXmx``: NXmx files no more specific class claims
  (VDS masters, DLS-style ``.nxs`` files without a DLS instrument name, any NXmx writer);
- ``FormatNXmxEigerFilewriterHdrmx``, a child of ``FormatNXmxEigerFilewriter``: DECTRIS
  FileWriter masters (``/entry/data/data_000001`` ... external links).

Everything but the frames is the parent class's own: geometry, scan, static mask, number of
images, and the parent's fixes of odd files. ``get_raw_data`` decodes with hdrmx, without the
GIL and without libhdf5, and returns what the parent returns: int32, the bit depth's top - 1
and top - 2 as -1 and -2, one array per detector module.

Where the answer could differ from the parent's, the parent reads the frames: stored types
dxtbx converts differently (floats, 64-bit integers), module layouts that are not 2-D boxes
inside the frame, a frame stack other than the one the parent reads, or a file the Rust reader
cannot open (logged at debug level, with the reason). A frame the Rust reader cannot decode
because it lacks a filter also goes to the parent. A missing data file or VDS source raises
``hdrmx_dials.Error`` naming the file and frame, where h5py would hand back fill values.

Choosing among siblings, dxtbx tries a parent's children in sorted name order and takes the
first whose ``understand()`` says yes; its rule is that no two siblings understand the same
file. Both classes sort after their current siblings and, to hold the rule whatever order
dxtbx tries them in (a format hint puts a class first), ``understand()`` says no to a file any
other child of the same parent understands: FormatNXmxDLS, FormatNXmxED, the ESRF ID23-2
FileWriter class and whatever other packages register.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from dxtbx import flumpy
from dxtbx.format import Registry
from dxtbx.format.FormatNXmx import FormatNXmx
from dxtbx.format.FormatNXmxEigerFilewriter import FormatNXmxEigerFilewriter
from dxtbx.nexus import get_detector_module_slices

import hdrmx_dials

logger = logging.getLogger(__name__)

__all__ = ["FormatNXmxEigerFilewriterHdrmx", "FormatNXmxHdrmx"]

# The FileWriter's data links, as FormatNXmxEigerFilewriter selects them.
_DATA_LINK = re.compile(r"data_\d{6}$")


def _claimed_by_sibling(parent: str, ours: str, image_file) -> bool:
    """Whether another registered child of `parent` understands `image_file`."""
    for name in Registry.get_format_class_dag().get(parent, []):
        if name == ours:
            continue
        try:
            if Registry.get_format_class_for(name).understand(image_file):
                return True
        except Exception as e:  # noqa: BLE001: dxtbx's own walk would stop at such a class
            logger.debug("%s: %s.understand raised %r", image_file, name, e)
    return False


class _HdrmxFrames:
    """``get_raw_data`` through hdrmx, for a FormatNXmx subclass that comes after it in the MRO."""

    def _start(self):
        super()._start()
        self._hdrmx = None
        self._hdrmx_slices = None
        why = self._hdrmx_open()
        if why:
            logger.debug("%s: frames through h5py: %s", self._image_file, why)

    def _hdrmx_bit_depth(self):
        """The bit depth the parent's get_raw_data applies."""
        return self._bit_depth_readout

    def _hdrmx_stack(self, nxdata) -> str | None:
        """Why hdrmx would read another frame stack than the parent, or None."""
        if nxdata.path != "/entry/data":
            return f"the NXdata group is {nxdata.path}, not /entry/data"
        key = nxdata.signal
        if isinstance(key, bytes):
            key = key.decode()
        if not (key and key in nxdata):
            key = next(iter(nxdata.keys()), None)
        # hdrmx reads /entry/data/data when it is a dataset, else the data_NNNNNN links.
        if key == "data" or (_DATA_LINK.match(key or "") and "data" not in nxdata):
            return None
        return f"the parent reads /entry/data/{key}"

    def _hdrmx_open(self) -> str | None:
        """Opens the frames through hdrmx; returns why not, or None."""
        nxmx_obj = self._get_nxmx(self._cached_file_handle)
        nxdata = nxmx_obj.entries[0].data[0]
        nxdetector = nxmx_obj.entries[0].instruments[0].detectors[0]
        why = self._hdrmx_stack(nxdata)
        if why:
            return why
        try:
            frames = hdrmx_dials.open(
                self._image_file, dxtbx=True, bit_depth=self._hdrmx_bit_depth()
            )
        except (OSError, TypeError, ValueError) as e:
            # Types and bit depths dxtbx converts otherwise (or refuses: then it says so itself),
            # and files only HDF5 reads.
            return str(e)
        ny, nx = frames.shape[1:]
        slices = tuple(tuple(s) for s in get_detector_module_slices(nxdetector))
        for s in slices:
            if len(s) != 2 or not all(
                0 <= x.start <= x.stop <= n for x, n in zip(s, (ny, nx))
            ):
                return f"detector module {s} is not a box inside the {ny} x {nx} frame"
        self._hdrmx = frames
        # One module over the whole frame (EIGER, most NXmx writers): the array as read.
        whole = (slice(0, ny, 1), slice(0, nx, 1))
        self._hdrmx_slices = None if slices == (whole,) else slices
        return None

    def get_raw_data(self, index):
        if self._hdrmx is None:
            return super().get_raw_data(index)
        try:
            frame = self._hdrmx.read(index)
        except hdrmx_dials.UnsupportedError as e:
            logger.debug("%s: frame %d through h5py: %s", self._image_file, index, e)
            return super().get_raw_data(index)
        if self._hdrmx_slices is None:
            return (flumpy.from_numpy(frame),)
        return tuple(
            flumpy.from_numpy(np.ascontiguousarray(frame[s])) for s in self._hdrmx_slices
        )


class FormatNXmxHdrmx(_HdrmxFrames, FormatNXmx):
    """NXmx data (VDS masters and any NXmx writer), frames decoded by hdrmx."""

    @staticmethod
    def understand(image_file):
        return not _claimed_by_sibling("FormatNXmx", "FormatNXmxHdrmx", image_file)


class FormatNXmxEigerFilewriterHdrmx(_HdrmxFrames, FormatNXmxEigerFilewriter):
    """DECTRIS FileWriter masters, frames decoded by hdrmx."""

    @staticmethod
    def understand(image_file):
        return not _claimed_by_sibling(
            "FormatNXmxEigerFilewriter", "FormatNXmxEigerFilewriterHdrmx", image_file
        )

    def _hdrmx_bit_depth(self):
        # As FormatNXmxEigerFilewriter.get_raw_data: the stored bit depth first.
        return self._bit_depth_image or self._bit_depth_readout

    def _hdrmx_stack(self, nxdata) -> str | None:
        # The parent reads the data_NNNNNN links in name order, as hdrmx does when there is no
        # /entry/data/data.
        if nxdata.path != "/entry/data" or "data" in nxdata:
            return "not a FileWriter frame stack (/entry/data/data_NNNNNN alone)"
        names = [k for k in nxdata.keys() if k.startswith("data_")]
        if not names or not all(_DATA_LINK.match(k) for k in names):
            return f"data links {names} are not all data_NNNNNN"
        return None
