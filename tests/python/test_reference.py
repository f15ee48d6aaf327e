"""Cross-checks between our `hdrmx chunk encode/decode` and the REFERENCE filters.

  ours -> reference: chunk encoded by our CLI, written with write_direct_chunk into an
                     HDF5 dataset carrying the matching hdf5plugin filter, read back by
                     h5py; for bslz4/bszstd also decoded with the bitshuffle package.
  reference -> ours: chunk written by h5py + hdf5plugin, read with read_direct_chunk,
                     decoded by our CLI.

The binary comes from $HDRMX_BIN, else target/{release,debug}/hdrmx; without one the
tests are skipped.  Run:  HDRMX_BIN=target/release/hdrmx pytest tests/python
"""
import io
import struct
import subprocess
from pathlib import Path

import bitshuffle
import h5py
import hdf5plugin
import numpy as np
import pytest

from built import HDRMX_MISSING, hdrmx_binary

ROOT = Path(__file__).resolve().parents[2]
DTYPES = ["uint8", "uint16", "uint32", "uint64"]
LENGTHS = [1, 7, 8, 9, 17, 127, 2049, 8193, 20003]

# (codec, block size or 0 for default, zstd level or None).  Block size is in elements
# for the bitshuffle codecs and in bytes for lz4 (filter 32004), as on the CLI.
VARIANTS = [
    ("bslz4", 0, None),
    ("bslz4", 64, None),
    ("bszstd", 0, 3),
    ("bszstd", 1024, 9),
    ("bitshuffle", 0, None),
    ("lz4", 0, None),
    ("lz4", 4096, None),
    ("zstd", 0, 3),
]


def reference_filter(codec, block, level):
    if codec == "bslz4":
        return hdf5plugin.Bitshuffle(nelems=block, cname="lz4")
    if codec == "bszstd":
        return hdf5plugin.Bitshuffle(nelems=block, cname="zstd", clevel=level)
    if codec == "bitshuffle":
        return hdf5plugin.Bitshuffle(nelems=block, cname="none")
    if codec == "lz4":
        return hdf5plugin.LZ4(nbytes=block)
    if codec == "zstd":
        return hdf5plugin.Zstd(clevel=level)
    raise ValueError(codec)


def default_block_elems(elem_size):
    """Reference default bitshuffle block: 8192 bytes worth, multiple of 8, at least 128."""
    return max(8192 // elem_size // 8 * 8, 128)


def make_data(dtype, n, kind="detector"):
    dt = np.dtype(dtype)
    rng = np.random.default_rng([7, dt.itemsize, n, kind == "random"])
    vmax = np.iinfo(dt).max
    if kind == "random":
        return rng.integers(0, vmax, n, dtype=dt, endpoint=True)
    a = rng.poisson(0.5, n).astype(dt)
    spikes = rng.random(n) < 0.01
    a[spikes] = rng.integers(20, min(vmax, 100_000), spikes.sum(), dtype=dt)
    a[rng.random(n) < 0.002] = vmax
    return a


@pytest.fixture(scope="session")
def hdrmx():
    path = hdrmx_binary()
    if path is None:
        pytest.skip(HDRMX_MISSING)
    return path


def cli_args(codec, elem_size, block, level):
    args = ["--codec", codec, "--elem-size", str(elem_size)]
    if block:
        args += ["--block-size", str(block)]
    if level is not None:
        args += ["--level", str(level)]
    return args


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))}\nexit {p.returncode}\n{p.stderr}"


def our_encode(hdrmx, tmp_path, arr, codec, block, level):
    src, dst = tmp_path / "in.raw", tmp_path / "out.chunk"
    src.write_bytes(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    run([hdrmx, "chunk", "encode", *cli_args(codec, arr.dtype.itemsize, block, level), src, dst])
    return dst.read_bytes()


def our_decode(hdrmx, tmp_path, chunk, dtype, n, codec, block):
    dt = np.dtype(dtype)
    src, dst = tmp_path / "in.chunk", tmp_path / "out.raw"
    src.write_bytes(chunk)
    run([hdrmx, "chunk", "decode", *cli_args(codec, dt.itemsize, block, None),
         "--size", str(n * dt.itemsize), src, dst])
    return np.frombuffer(dst.read_bytes(), dtype=dt.newbyteorder("<"))


def h5_read_chunk(chunk, dtype, n, flt):
    """Store chunk bytes as the only chunk of a filtered dataset; read through HDF5."""
    with h5py.File(io.BytesIO(), "w") as f:
        d = f.create_dataset("d", shape=(n,), dtype=dtype, chunks=(n,), **flt)
        d.id.write_direct_chunk((0,), chunk, 0)
        return d[...]


def h5_write_chunk(arr, flt):
    """Reference encoder: write arr as one chunk through the filter; return stored bytes."""
    with h5py.File(io.BytesIO(), "w") as f:
        d = f.create_dataset("d", data=arr, chunks=arr.shape, **flt)
        mask, chunk = d.id.read_direct_chunk((0,))
    assert mask == 0, "HDF5 skipped the filter"
    return bytes(chunk)


def check_ours_in_reference(hdrmx, tmp_path, arr, codec, block, level):
    n, esize = arr.size, arr.dtype.itemsize
    chunk = our_encode(hdrmx, tmp_path, arr, codec, block, level)

    # (a) HDF5 + hdf5plugin read our chunk.
    back = h5_read_chunk(chunk, arr.dtype, n, reference_filter(codec, block, level))
    np.testing.assert_array_equal(back, arr)

    # (b) the bitshuffle package reads our block stream; header is what HDF5 writes.
    if codec in ("bslz4", "bszstd"):
        size, block_bytes = struct.unpack(">QI", chunk[:12])
        assert size == n * esize
        assert block_bytes == (block or default_block_elems(esize)) * esize
        stream = np.frombuffer(chunk, dtype=np.uint8, offset=12)
        dec = bitshuffle.decompress_lz4 if codec == "bslz4" else bitshuffle.decompress_zstd
        np.testing.assert_array_equal(dec(stream, (n,), arr.dtype, block), arr)
    elif codec == "bitshuffle":
        assert chunk == bitshuffle.bitshuffle(arr, block).tobytes()
    elif codec == "lz4":
        size, block_bytes = struct.unpack(">QI", chunk[:12])
        assert size == n * esize
        assert block_bytes == min(block or 1 << 30, n * esize)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("codec,block,level", VARIANTS)
def test_ours_decoded_by_reference(hdrmx, tmp_path, codec, block, level, dtype, n):
    check_ours_in_reference(hdrmx, tmp_path, make_data(dtype, n), codec, block, level)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("codec,block,level", VARIANTS)
def test_reference_decoded_by_ours(hdrmx, tmp_path, codec, block, level, dtype, n):
    arr = make_data(dtype, n)
    chunk = h5_write_chunk(arr, reference_filter(codec, block, level))
    np.testing.assert_array_equal(our_decode(hdrmx, tmp_path, chunk, dtype, n, codec, block), arr)


# Incompressible data: LZ4 blocks stored raw (32004), zstd raw blocks, LZ4 expansion.
@pytest.mark.parametrize("codec,block,level", VARIANTS)
def test_random_both_ways(hdrmx, tmp_path, codec, block, level):
    arr = make_data("uint32", 5001, kind="random")
    check_ours_in_reference(hdrmx, tmp_path, arr, codec, block, level)
    chunk = h5_write_chunk(arr, reference_filter(codec, block, level))
    np.testing.assert_array_equal(our_decode(hdrmx, tmp_path, chunk, "uint32", arr.size, codec, block), arr)
