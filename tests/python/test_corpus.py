"""The neggia-rs corpus (tests/corpus) is what its generator makes, and holds the structures its
README claims.

The files are committed so that `cargo test` needs no Python; this test proves they are not
stale: regenerating them gives the same bytes, and check_corpus.py (an HDF5-free decoder)
confirms each superblock, chunk index, group storage and VDS encoding listed in the README.
"""

import filecmp
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).parents[1] / "corpus"


def test_committed_corpus_is_what_the_generator_makes(tmp_path):
    subprocess.run([sys.executable, CORPUS / "make_corpus.py", tmp_path], check=True)
    committed = CORPUS / "files"
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    kept = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert made == kept
    differ = [str(p) for p in made if not filecmp.cmp(tmp_path / p, committed / p, shallow=False)]
    assert not differ, f"regenerate with make_corpus.py: {differ}"


def test_corpus_structures_are_as_documented():
    subprocess.run([sys.executable, CORPUS / "check_corpus.py", CORPUS / "files"], check=True)
