"""One plugin file, two HDF5 libraries in one process.

h5py brings its own HDF5 (2.0); Debian's libhdf5 (1.10) is loaded next to it with ctypes. Both
read the same bitshuffle file through our plugin: each must get a filter class bound to itself
(the plugin finds its caller at run time), and errors must land on the caller's error stack.
"""

import ctypes
import ctypes.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGINS = ["libhdrmx_h5bshuf.so", "libhdrmx_h5lz4.so", "libhdrmx_h5zstd.so"]


def plugin_dir(tmp_path):
    built = Path(os.environ.get("HDRMX_PLUGIN_DIR", Path(__file__).parents[2] / "target" / "release"))
    if not all((built / p).exists() for p in PLUGINS):
        pytest.skip(f"plugins not built in {built} (cargo xtask test builds them)")
    d = tmp_path / "plugins"
    d.mkdir()
    for p in PLUGINS:
        (d / p).symlink_to(built / p)
    return d


def system_hdf5():
    for name in ["libhdf5_serial.so.103", "libhdf5.so.103", ctypes.util.find_library("hdf5_serial")]:
        if name:
            try:
                ctypes.CDLL(name)
                return name
            except OSError:
                pass
    pytest.skip("no system libhdf5 (apt-get install libhdf5-103-1 or hdf5-tools)")


SCRIPT = textwrap.dedent(
    """
    import ctypes, sys
    import numpy as np
    import h5py

    path, corrupt, libname = sys.argv[1], sys.argv[2], sys.argv[3]
    want = (np.arange(4 * 64 * 80) % 1000).astype(np.uint16).reshape(4, 64, 80)

    # 1. h5py's HDF5 loads the plugin.
    with h5py.File(path, "r") as f:
        assert (f["data"][...] == want).all(), "h5py read differs"
    print("h5py", h5py.version.hdf5_version)

    # 2. The system HDF5 loads the same plugin file and reads through it.
    lib = ctypes.CDLL(libname)
    hid = ctypes.c_int64
    for fn in ["H5Fopen", "H5Dopen2"]:
        getattr(lib, fn).restype = hid
    lib.H5open()
    major, minor, release = ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
    lib.H5get_libversion(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(release))
    native_u16 = hid.in_dll(lib, "H5T_NATIVE_USHORT_g").value

    def read(file_path, dataset, on_error=lambda: None):
        fid = lib.H5Fopen(file_path.encode(), 0, hid(0))
        assert fid >= 0, "H5Fopen failed"
        did = lib.H5Dopen2(hid(fid), dataset.encode(), hid(0))
        out = np.zeros(want.shape, np.uint16)
        status = lib.H5Dread(hid(did), hid(native_u16), hid(0), hid(0), hid(0), out.ctypes.data_as(ctypes.c_void_p))
        if status < 0:
            on_error()  # before the next API call clears the stack
        lib.H5Dclose(hid(did))
        lib.H5Fclose(hid(fid))
        return status, out

    status, out = read(path, "/data")
    assert status >= 0 and (out == want).all(), "system HDF5 read differs"
    print("system", f"{major.value}.{minor.value}.{release.value}")

    # 3. A corrupt chunk: the system library's error stack gets our message.
    msgs = []
    WALK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)

    class Err(ctypes.Structure):
        _fields_ = [("cls", hid), ("maj", hid), ("min", hid), ("line", ctypes.c_uint),
                    ("func", ctypes.c_char_p), ("file", ctypes.c_char_p), ("desc", ctypes.c_char_p)]

    @WALK
    def walk(n, err, data):
        msgs.append(ctypes.cast(err, ctypes.POINTER(Err)).contents.desc.decode())
        return 0

    lib.H5Eset_auto2(hid(0), None, None)
    status, _ = read(corrupt, "/data", lambda: lib.H5Ewalk2(hid(0), 0, walk, None))
    assert status < 0, "corrupt chunk read succeeded"
    assert any("claims" in m for m in msgs), msgs
    print("system error:", [m for m in msgs if "claims" in m][0])

    # 4. And h5py still works afterwards.
    with h5py.File(path, "r") as f:
        assert (f["data"][...] == want).all()
    print("ok")
    """
)


def test_one_plugin_serves_two_hdf5_libraries(tmp_path):
    plugins = plugin_dir(tmp_path)
    libname = system_hdf5()
    import h5py
    import hdf5plugin  # noqa: F401  (writes the file with the reference plugin)
    import numpy as np

    want = (np.arange(4 * 64 * 80) % 1000).astype(np.uint16).reshape(4, 64, 80)
    good, bad = tmp_path / "good.h5", tmp_path / "bad.h5"
    for path in (good, bad):
        with h5py.File(path, "w") as f:
            d = f.create_dataset("data", data=want, chunks=(1, 64, 80), **hdf5plugin.Bitshuffle(cname="lz4"))
            if path == bad:
                _, chunk = d.id.read_direct_chunk((2, 0, 0))
                chunk = bytearray(chunk)
                chunk[12:16] = b"\xff\xff\xff\xff"
                d.id.write_direct_chunk((2, 0, 0), bytes(chunk))
    env = {k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"}
    env["HDF5_PLUGIN_PATH"] = str(plugins)
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(good), str(bad), libname], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("h5py 2.") and lines[1].startswith("system 1.10"), lines
    assert "block 0 claims 4294967295 bytes" in lines[2], lines
    assert lines[-1] == "ok"
