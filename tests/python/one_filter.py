"""Scaffolding for testing one of our filter plugins alone: the plugin copied into a private
HDF5_PLUGIN_PATH, each scenario in its own interpreter (the test file run as a script with a
subcommand, which prints one JSON line), h5dump beside it. Used by test_filter_binning.py and
test_filter_lossy.py.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from built import plugin_dir

TIMEOUT = 120
H5DUMP = shutil.which("h5dump")


def mapped_plugins():
    """Our plugin libraries mapped into this process (what a worker reports)."""
    with open("/proc/self/maps") as m:
        return sorted({line.split()[-1] for line in m if "libhdrmx_h5" in line})


def dump_numbers(text):
    """The integers of h5dump's DATA block."""
    m = re.search(r"DATA \{\n(.*?)\n\s*\}", text, re.S)
    assert m, f"no DATA block in h5dump output:\n{text[:2000]}"
    return [int(x) for x in re.findall(r"-?\d+", m.group(1))]


class FilterEnv:
    """A private plugin directory holding only `lib`, and the workers of `script`."""

    def __init__(self, base, lib, script):
        self.base = base
        self.lib = lib
        self.script = script
        self.plugins = base / "plugins"
        self.plugins.mkdir()
        shutil.copy2(plugin_dir() / lib, self.plugins / lib)
        self._files = {}

    def env(self):
        e = dict(os.environ)
        for k in ("HDF5_PLUGIN_PRELOAD", "PYTHONSTARTUP"):
            e.pop(k, None)
        e["HDF5_PLUGIN_PATH"] = str(self.plugins)
        e["HDF5_USE_FILE_LOCKING"] = "FALSE"
        return e

    def run(self, *args):
        """Runs one worker; returns its JSON result and stderr. The plugin must have been used,
        except by `can-apply`, where creation may fail before HDF5 loads it."""
        import pytest

        p = subprocess.run([sys.executable, str(self.script), *map(str, args)], env=self.env(),
                           capture_output=True, text=True, timeout=TIMEOUT, cwd=self.base)
        if p.returncode != 0:
            pytest.fail(f"worker {' '.join(map(str, args))}: exit {p.returncode}\n"
                        f"--- stderr ---\n{p.stderr[-4000:]}")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        assert any(self.lib in lib for lib in res["plugins"]) or args[0] == "can-apply", \
            res["plugins"]
        return res, p.stderr

    def tool(self, *cmd):
        """Runs an HDF5 command-line tool with only our plugin on the path."""
        return subprocess.run(list(map(str, cmd)), env=self.env(), capture_output=True,
                              text=True, timeout=TIMEOUT, cwd=self.base)

    def file(self, kind):
        """The shared test file of a kind ("written" or "corrupt"), written once."""
        if kind not in self._files:
            path = self.base / f"{kind}.h5"
            self.run("write" if kind == "written" else "make-corrupt", path)
            self._files[kind] = path
        return self._files[kind]
