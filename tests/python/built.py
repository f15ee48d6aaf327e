"""Where the tests find what cargo built: the `hdrmx` binary and the plugin directory."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def plugin_dir():
    """The built plugins and XDS host: $HDRMX_PLUGIN_DIR (xtask sets it), else target/release."""
    env = os.environ.get("HDRMX_PLUGIN_DIR")
    return Path(env) if env else ROOT / "target" / "release"


def hdrmx_binary():
    """$HDRMX_BIN (which must exist), else target/{release,debug}/hdrmx; None when not built."""
    import pytest

    env = os.environ.get("HDRMX_BIN")
    if env:
        if not Path(env).is_file():
            pytest.fail(f"HDRMX_BIN={env} does not exist")
        return env
    for p in (ROOT / "target/release/hdrmx", ROOT / "target/debug/hdrmx"):
        if p.is_file():
            return str(p)
    return None


HDRMX_MISSING = "hdrmx binary not found: set HDRMX_BIN or build it (cargo build -p hdrmx-cli)"
