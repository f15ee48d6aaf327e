"""Type stubs for the Rust extension (dials-format/src/lib.rs)."""

import os
import pathlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

class Error(OSError):
    """A file that cannot be read: missing, corrupt, a missing data file or VDS source."""

class UnsupportedError(Error):
    """Valid HDF5 the reader does not handle (an unusual filter or layout)."""

class Dataset:
    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, ny, nx)."""
    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype reads return: as stored, or int32 in the dxtbx convention."""
    @property
    def mask(self) -> npt.NDArray[np.uint32] | None:
        """The NXmx pixel mask, (ny, nx), read-only."""
    @property
    def path(self) -> pathlib.Path:
        """The master file."""
    @property
    def metadata(self) -> dict[str, Any]:
        """path, frames, shape, dtype (stored), bit_depth, saturation_value, pixel_size,
        convention ("stored" or "dxtbx") and, for dxtbx, dxtbx_bit_depth."""
    def __len__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[pathlib.Path, bool, int | None]]: ...
    def read(self, i: int) -> npt.NDArray[Any]:
        """Frame i (negative counts from the end): a new writeable C-contiguous (ny, nx) array."""
    def read_into(self, i: int, out: npt.NDArray[Any]) -> None:
        """Frame i into out: writeable, C-contiguous, (ny, nx), of `dtype`."""
    def read_many(self, indices: Iterable[int]) -> npt.NDArray[Any]:
        """Frames as a new (len(indices), ny, nx) array, decoded in parallel, GIL released."""

def open(
    master: str | os.PathLike[str], dxtbx: bool = False, bit_depth: int | None = None
) -> Dataset:
    """Opens a master file; dxtbx=True: int32 frames as dxtbx's FormatNXmx returns them for
    bit_depth (None: values kept; uint32 frames need 32)."""
