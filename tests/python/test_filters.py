"""Our HDF5 filter plugins (32008 bitshuffle, 32004 LZ4, 32015 zstd) against the reference
(h5py + hdf5plugin) and Debian's HDF5 1.10 command-line tools.

Plugins come from $HDRMX_PLUGIN_DIR (xtask sets target/release), else target/release; the
module is skipped when any of the three .so files is missing. They are COPIED into a
private directory: target/release holds other .so files, and HDF5 dlopens everything in
HDF5_PLUGIN_PATH.

Two implementations of one filter id clash in one process, so every scenario runs in its
own interpreter (filter_scenarios.py, one subcommand per scenario):

  ours   HDF5_PLUGIN_PATH = our three plugins only, hdf5plugin never imported
  ref    hdf5plugin imported, HDF5_PLUGIN_PATH unset
  plain  no filters at all (HDF5_PLUGIN_PATH = an empty directory)

Every worker reports the filter libraries mapped into it, and each test checks that the
implementation it meant to exercise is the one that ran. h5dump/h5repack (apt package
hdf5-tools, HDF5 1.10) always run with HDF5_PLUGIN_PATH = ours.

Scenarios:
  test_reference_writes_ours_reads   hdf5plugin writes every variant, ours reads
  test_ours_writes_reference_reads   ours writes, hdf5plugin reads; cd_values as hdf5plugin
  test_ours_write_and_read_one_process  ours writes and reads in one process (hdf5plugin #204)
  test_h5dump_prints_data             h5dump (HDF5 1.10) + ours on files from both writers
  test_h5repack                       h5repack -f UD=... / NONE through ours, read back by both
  test_corrupt_chunk_*                hostile chunks: OSError with our message, no crash
  test_can_apply_*                    32008 refuses types it cannot shuffle; vlen data survive
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRIPT = HERE / "filter_scenarios.py"
sys.path.insert(0, str(HERE))
import filter_scenarios as fs  # noqa: E402  (numpy only at import; no h5py, no hdf5plugin)

PLUGIN_FILES = list(fs.OUR_LIB.values())


def _plugin_source():
    env = os.environ.get("HDRMX_PLUGIN_DIR")
    d = Path(env) if env else ROOT / "target" / "release"
    return d, [n for n in PLUGIN_FILES if not (d / n).is_file()]


PLUGIN_SRC, _MISSING = _plugin_source()
if _MISSING:
    pytest.skip(
        f"filter plugins not built: {', '.join(_MISSING)} missing in {PLUGIN_SRC} "
        f"(set HDRMX_PLUGIN_DIR, or: cargo build --release -p hdrmx-h5bshuf -p hdrmx-h5lz4 "
        f"-p hdrmx-h5zstd)",
        allow_module_level=True,
    )

H5DUMP = shutil.which("h5dump")
H5REPACK = shutil.which("h5repack")
needs_tools = pytest.mark.skipif(not (H5DUMP and H5REPACK),
                                 reason="h5dump/h5repack not found (apt-get install hdf5-tools)")

VARIANTS = list(fs.VARIANTS)
TIMEOUT = 120


def fid_of(variant):
    return fs.VARIANTS[variant][0]


def describe_rc(rc):
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name} ({rc})"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


class Env:
    """Subprocess environments and a cache of the files the scenarios share."""

    def __init__(self, base):
        self.base = base
        self.ours = base / "plugins-ours"
        self.ours.mkdir()
        for name in PLUGIN_FILES:
            shutil.copy2(PLUGIN_SRC / name, self.ours / name)
        self.empty = base / "plugins-none"
        self.empty.mkdir()
        self.files = base / "files"
        self.files.mkdir()
        self._cache = {}

    def env(self, mode):
        e = dict(os.environ)
        for k in ("HDF5_PLUGIN_PATH", "HDF5_PLUGIN_PRELOAD", "PYTHONSTARTUP"):
            e.pop(k, None)
        e["HDF5_USE_FILE_LOCKING"] = "FALSE"
        if mode in ("ours", "tool"):
            e["HDF5_PLUGIN_PATH"] = str(self.ours)
        elif mode == "plain":
            e["HDF5_PLUGIN_PATH"] = str(self.empty)
        elif mode != "ref":
            raise ValueError(mode)
        return e

    def run(self, mode, command, *args):
        """Run one worker scenario; returns (result dict, stderr)."""
        cmd = [sys.executable, str(SCRIPT), command, "--mode", mode, *map(str, args)]
        p = subprocess.run(cmd, env=self.env(mode), capture_output=True, text=True,
                           timeout=TIMEOUT, cwd=self.base)
        if p.returncode != 0:
            pytest.fail(f"{mode} worker `{command} {' '.join(map(str, args))}` "
                        f"{describe_rc(p.returncode)}\n--- stderr (tail) ---\n{p.stderr[-4000:]}"
                        f"\n--- stdout (tail) ---\n{p.stdout[-2000:]}")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        check_isolation(res, mode)
        return res, p.stderr

    def tool(self, *cmd):
        return subprocess.run(list(map(str, cmd)), env=self.env("tool"), capture_output=True,
                              text=True, timeout=TIMEOUT, cwd=self.base)

    def written(self, mode, variant):
        """File written by `mode` with every dataset of filter_scenarios (cached)."""
        key = ("written", mode, variant)
        if key not in self._cache:
            path = self.files / f"{mode}-{variant or 'plain'}.h5"
            res, _ = self.run(mode, "write", "--file", path,
                              *(["--variant", variant] if variant else []))
            errors = {k: v["error"] for k, v in res["datasets"].items() if "error" in v}
            if errors:
                pytest.fail(f"{mode} could not write {variant}:\n" + fmt(errors))
            self._cache[key] = (path, res)
        return self._cache[key]

    def plain(self):
        return self.written("plain", None)[0]

    def corrupt(self, variant):
        key = ("corrupt", variant)
        if key not in self._cache:
            path = self.files / f"corrupt-{variant}.h5"
            self.run("ref", "make-corrupt", "--file", path, "--variant", variant)
            self._cache[key] = path
        return self._cache[key]


def check_isolation(res, mode):
    libs = res.get("plugins", [])
    theirs = [p for p in libs if "/hdf5plugin/" in p]
    ours = [p for p in libs if "libhdrmx_h5" in p]
    if mode == "ours":
        assert not theirs, f"ours-mode worker has hdf5plugin libraries mapped: {theirs}"
    elif mode == "ref":
        assert not ours, f"ref-mode worker has our plugins mapped: {ours}"
        assert theirs, "ref-mode worker has no hdf5plugin library mapped"
    else:
        assert not libs, f"plain-mode worker has filter libraries mapped: {libs}"


def assert_ours_loaded(res, fid):
    libs = [Path(p).name for p in res["plugins"]]
    assert fs.OUR_LIB[fid] in libs, (f"filter {fid} was not served by {fs.OUR_LIB[fid]}; "
                                     f"mapped: {res['plugins']}")


def fmt(d):
    """{dataset: problem} as lines, datasets with the same problem on one line."""
    by_msg = {}
    for k, v in d.items():
        by_msg.setdefault(str(v), []).append(k)
    lines = []
    for msg, names in by_msg.items():
        if len(names) == 1:
            who = names[0]
        else:
            more = ", ..." if len(names) > 4 else ""
            who = f"{len(names)} datasets ({', '.join(names[:4])}{more})"
        lines.append(f"  {who}: {msg}")
    return "\n".join(lines)


def read_failures(res, fid=None):
    """{dataset: problem} for a `read` result: data mismatch, read error, chunks stored
    unfiltered, or (if fid given) the filter missing from the pipeline."""
    bad = {}
    for name, rec in res["datasets"].items():
        if not rec.get("ok"):
            bad[name] = rec.get("error", "not equal")
        elif rec.get("unfiltered_chunks"):
            bad[name] = f"{rec['unfiltered_chunks']} chunk(s) stored with the filter skipped"
        elif fid is not None and fid not in [f["id"] for f in rec["pipeline"]]:
            bad[name] = f"filter {fid} not in pipeline {rec['pipeline']}"
    missing = set(fs.dataset_names()) - set(res["datasets"])
    for name in sorted(missing):
        bad[name] = "dataset missing from the file"
    return bad


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    return Env(tmp_path_factory.mktemp("filters"))


# ---------------------------------------------------------------- h5py <-> h5py

@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_writes_ours_reads(env, variant):
    path, _ = env.written("ref", variant)
    res, stderr = env.run("ours", "read", "--file", path)
    assert_ours_loaded(res, fid_of(variant))
    bad = read_failures(res, fid_of(variant))
    if bad:
        pytest.fail(f"ours reading hdf5plugin's {variant}:\n{fmt(bad)}"
                    f"\n--- worker stderr ---\n{stderr[-3000:]}")


def expected_cd(variant, elem_size):
    """What our set_local should store, per the design: [0, 5, elem, block, comp(, lvl)]."""
    fid, opts, _ = fs.VARIANTS[variant]
    if fid == fs.BSHUF:
        return [0, 5, elem_size, *opts]
    return list(opts)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ours_writes_reference_reads(env, variant):
    fid = fid_of(variant)
    path, wres = env.written("ours", variant)
    assert_ours_loaded(wres, fid)
    res, stderr = env.run("ref", "read", "--file", path, "--variant", variant, "--ref-cd")
    bad = read_failures(res, fid)
    if bad:
        pytest.fail(f"hdf5plugin reading our {variant}:\n{fmt(bad)}"
                    f"\n--- worker stderr ---\n{stderr[-3000:]}")

    # cd_values as stored in the file (after set_local) against hdf5plugin's, same dtype.
    cd_problems = {}
    for name, rec in wres["datasets"].items():
        dt, _ = fs.split_name(name)
        ours = [f for f in rec["pipeline"] if f["id"] == fid]
        ref = [f for f in res["ref_cd"][dt] if f["id"] == fid]
        if len(ours) != 1:
            cd_problems[name] = f"pipeline {rec['pipeline']}"
            continue
        o, r = ours[0]["cd_values"], ref[0]["cd_values"]
        if fid == fs.BSHUF:
            ok = len(o) == len(r) and o[:1] + o[2:] == r[:1] + r[2:]
        else:
            ok = o == r
        if not ok:
            cd_problems[name] = f"ours {o}, hdf5plugin {r}"
        elif o != expected_cd(variant, np.dtype(dt).itemsize):
            cd_problems[name] = f"ours {o}, design says {expected_cd(variant, np.dtype(dt).itemsize)}"
    if cd_problems:
        pytest.fail(f"stored cd_values for {variant}:\n{fmt(cd_problems)}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_ours_write_and_read_one_process(env, variant, tmp_path):
    """hdf5plugin issue 204: with plugins found only via HDF5_PLUGIN_PATH, h5py could read
    but not write. Ours must do both, in one process, with no hdf5plugin."""
    fid = fid_of(variant)
    res, stderr = env.run("ours", "roundtrip", "--file", tmp_path / "rt.h5", "--variant", variant)
    assert_ours_loaded(res, fid)
    errors = {k: v["error"] for k, v in res["written"].items() if "error" in v}
    if errors:
        pytest.fail(f"ours could not write {variant}:\n{fmt(errors)}\n{stderr[-3000:]}")
    bad = read_failures(res, fid)
    if bad:
        pytest.fail(f"ours reading back its own {variant}:\n{fmt(bad)}\n{stderr[-3000:]}")
    assert res["extra_ok"], f"dataset appended to the reopened file: {res.get('extra_error')}"


# ---------------------------------------------------------------- h5dump / h5repack (HDF5 1.10)

H5DUMP_DATASETS = ["uint8_odd_tail", "uint16_frame", "uint32_multi", "uint64_long1d",
                   "float32_odd", "uint16_random"]


def h5dump_data(env, path, name):
    p = env.tool(H5DUMP, "-d", f"/{name}", "-y", "-w", "0", path)
    return p


def dump_body(text):
    """h5dump output without the first line (which names the file)."""
    return text.split("\n", 1)[1] if "\n" in text else ""


def dump_numbers(text):
    m = re.search(r"DATA \{\n(.*?)\n\s*\}", text, re.S)
    assert m, f"no DATA block in h5dump output:\n{text[:2000]}"
    return [int(x) for x in re.findall(r"-?\d+", m.group(1))]


@needs_tools
@pytest.mark.parametrize("writer", ["ours", "ref"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_h5dump_prints_data(env, writer, variant):
    path, _ = env.written(writer, variant)
    plain = env.plain()
    for name in H5DUMP_DATASETS:
        p = h5dump_data(env, path, name)
        assert p.returncode == 0, (f"h5dump -d /{name} on {writer}-written {variant}: "
                                   f"{describe_rc(p.returncode)}\n{p.stderr[-3000:]}{p.stdout[-1000:]}")
        want = h5dump_data(env, plain, name)
        assert want.returncode == 0, want.stderr
        if dump_body(p.stdout) != dump_body(want.stdout):
            got_l, want_l = dump_body(p.stdout).splitlines(), dump_body(want.stdout).splitlines()
            first = next((i for i, (a, b) in enumerate(zip(got_l, want_l)) if a != b),
                         min(len(got_l), len(want_l)))
            pytest.fail(f"h5dump /{name} of {writer}-written {variant} differs from the "
                        f"uncompressed file at output line {first + 2}:\n"
                        f"  got:  {got_l[first][:300] if first < len(got_l) else '<end>'}\n"
                        f"  want: {want_l[first][:300] if first < len(want_l) else '<end>'}")
        dt, lay = fs.split_name(name)
        if np.dtype(dt).kind == "u":
            nums = dump_numbers(p.stdout)
            assert nums == fs.make_data(dt, lay).reshape(-1).tolist(), f"h5dump /{name} values"


REPACKS = [
    # (input, h5repack filter spec, filter id expected in the output or None)
    ("plain", "UD=32008,0,2,0,2", fs.BSHUF),
    ("plain", "UD=32008,0,3,0,3,5", fs.BSHUF),
    ("plain", "UD=32008,0,2,1024,0", fs.BSHUF),
    ("plain", "UD=32004,0,1,4096", fs.LZ4),
    ("plain", "UD=32015,0,1,3", fs.ZSTD),
    ("ref:bslz4", "UD=32015,0,1,3", fs.ZSTD),
    ("ours:bszstd5", "UD=32008,0,2,0,2", fs.BSHUF),
    ("ref:lz4", "NONE", None),
    ("ref:bslz4", "NONE", None),
]


@needs_tools
@pytest.mark.parametrize("source,spec,fid", REPACKS,
                         ids=[f"{s}->{f}" for s, f, _ in REPACKS])
def test_h5repack(env, tmp_path, source, spec, fid):
    if source == "plain":
        src = env.plain()
    else:
        writer, variant = source.split(":")
        src = env.written(writer, variant)[0]
    out = tmp_path / "out.h5"
    p = env.tool(H5REPACK, "-f", spec, src, out)
    assert p.returncode == 0, (f"h5repack -f {spec} ({source}): {describe_rc(p.returncode)}\n"
                               f"{p.stderr[-3000:]}{p.stdout[-1000:]}")
    ud = [int(x) for x in spec[3:].split(",")] if spec.startswith("UD=") else None
    for reader in ("ours", "ref"):
        res, stderr = env.run(reader, "read", "--file", out)
        bad = read_failures(res, fid)
        if fid is None:
            bad.update({k: f"expected no filters, pipeline {v['pipeline']}"
                        for k, v in res["datasets"].items() if v["pipeline"]})
        if bad:
            pytest.fail(f"{reader} reading h5repack -f {spec} of {source}:\n{fmt(bad)}"
                        f"\n--- worker stderr ---\n{stderr[-3000:]}")
        if reader == "ours" and fid is not None:
            assert_ours_loaded(res, fid)
        if fid == fs.BSHUF:
            # set_local ran under HDF5 1.10: [0, 5, elem_size, block, compression(, level)]
            cds = {}
            for name, rec in res["datasets"].items():
                cd = next(f["cd_values"] for f in rec["pipeline"] if f["id"] == fid)
                want = [0, 5, np.dtype(fs.split_name(name)[0]).itemsize, *ud[3:]]
                if cd != want:
                    cds[name] = f"stored {cd}, want {want}"
            if cds:
                pytest.fail(f"cd_values after h5repack -f {spec}:\n{fmt(cds)}")


# ---------------------------------------------------------------- hostile chunks

CORRUPT = [(v, c) for v, cases in fs.CORRUPT_CASES.items() for c in cases]
TOKEN = {fs.BSHUF: "bitshuffle", fs.LZ4: "lz4", fs.ZSTD: "zstd"}


def hdf5_keeps_filter_errors(version):
    """Whether errors a filter callback pushes reach the caller's error stack. HDF5 1.10
    keeps them; HDF5 2.0 (h5py 3.16's) drops them: a ctypes filter that calls H5Epush2 and
    returns 0 yields only "filter returned failure during read". The plugins therefore
    also print the message on stderr. Boundary taken conservatively at 1.14."""
    return tuple(int(x) for x in version.split(".")[:2]) < (1, 14)


@pytest.mark.parametrize("variant,case", CORRUPT, ids=[f"{v}-{c}" for v, c in CORRUPT])
def test_corrupt_chunk_h5py(env, variant, case):
    """Chunk 0 replaced (write_direct_chunk) by a hostile one: reading it through ours
    raises OSError, twice; our message reaches the user (in the exception where HDF5 keeps
    filter errors, else on stderr); the process survives; the other chunks still read."""
    fid = fid_of(variant)
    path = env.corrupt(variant)
    res, stderr = env.run("ours", "read-corrupt", "--file", path, "--case", case)
    assert_ours_loaded(res, fid)
    r = res["result"]
    for attempt in ("first", "second"):
        a = r[attempt]
        if not a["raised"]:
            pytest.fail(f"{attempt} read of the corrupt chunk ({case}) did not raise; data equal "
                        f"to the original: {a['equal']}\n--- worker stderr ---\n{stderr[-3000:]}")
        assert a["type"] == "OSError", f"{a['type']}: {a['message']}"
    msg = r["first"]["message"]
    where = msg if hdf5_keeps_filter_errors(res["hdf5"]) else msg + "\n" + stderr
    if TOKEN[fid] not in where.lower():
        pytest.fail(f"our filter's message is nowhere (HDF5 {res['hdf5']}): exception {msg!r}"
                    f"\n--- worker stderr ---\n{stderr[-3000:]}")
    if case == "block_claims_ffffffff":
        assert "claims" in where and "4294967295" in where, where
    if not r["rest_ok"]:
        pytest.fail(f"valid chunks after the corrupt one: {r.get('rest_error', 'not equal')}")


@needs_tools
@pytest.mark.parametrize("variant,case", CORRUPT, ids=[f"{v}-{c}" for v, c in CORRUPT])
def test_corrupt_chunk_h5dump(env, variant, case):
    """h5dump (HDF5 1.10) fails cleanly, and its HDF5 error stack carries our message."""
    fid = fid_of(variant)
    path = env.corrupt(variant)
    p = env.tool(H5DUMP, "--enable-error-stack", "-d", f"/{case}", path)
    assert p.returncode > 0, (f"h5dump on a corrupt chunk ({variant} {case}): "
                              f"{describe_rc(p.returncode)}; stderr:\n{p.stderr[-2000:]}")
    # An HDF5-DIAG entry pushed by the plugin, e.g. "#005: hdrmx line 0 in decode(): bitshuffle: ..."
    entries = re.findall(r"#\d+: (.*)", p.stderr + p.stdout)
    ours = [e for e in entries if TOKEN[fid] in e.lower() and "H5Z.c" not in e]
    assert ours, (f"no error-stack entry from our filter in h5dump's output ({variant} {case}):"
                  f"\n{p.stderr[-3000:]}")


# ---------------------------------------------------------------- can_apply

@pytest.mark.parametrize("kind", ["S3", "compound3", "compound12"])
def test_can_apply_refuses(env, kind, tmp_path):
    res, stderr = env.run("ours", "can-apply", "--kind", kind, "--file", tmp_path / "t.h5")
    r = res["result"]
    if not r["raised"]:
        pytest.fail(f"32008 accepted a {kind} dataset: {r}\n--- worker stderr ---\n{stderr[-3000:]}")
    assert "bitshuffle" in r["message"].lower(), (
        f"refusal does not carry our message: {r['type']}: {r['message']!r}"
        f"\n--- worker stderr ---\n{stderr[-3000:]}")


def test_can_apply_vlen_string(env, tmp_path):
    """HDF5 2.0 never calls can_apply/set_local for a variable-length string dataset (a
    ctypes probe filter sees no call), so creation cannot be refused there. What must hold:
    either a refusal with our message, or the data survive (write, reopen, read equal)."""
    res, stderr = env.run("ours", "can-apply", "--kind", "vlen_str", "--file", tmp_path / "t.h5")
    r = res["result"]
    if r["raised"]:
        assert "bitshuffle" in r["message"].lower(), r["message"]
        return
    if "write_error" in r:
        assert "bitshuffle" in (r["write_error"] + stderr).lower(), r["write_error"]
        return
    assert r["roundtrip"], (f"vlen strings written through 32008 do not read back: {r}"
                            f"\n--- worker stderr ---\n{stderr[-3000:]}")


def test_can_apply_accepts_uint16(env, tmp_path):
    res, stderr = env.run("ours", "can-apply", "--kind", "uint16", "--file", tmp_path / "t.h5")
    r = res["result"]
    assert not r["raised"], f"{r['type']}: {r['message']}\n{stderr[-3000:]}"
    assert r.get("roundtrip"), f"uint16 written and read back through ours: {r}"
    assert r["unfiltered_chunks"] == 0, f"{r['unfiltered_chunks']} chunks stored unfiltered"
