"""The docs quote generated files verbatim: no retyped or stale results table."""

import glob
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))  # the lab, as `python tools/x.py` sees it

from lab.docs import embed_generated, generated_sources  # noqa: E402


def test_generated_blocks_are_refilled_from_their_files(tmp_path):
    (tmp_path / "table.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    page = "intro\n<!-- generated from table.md -->\nold, retyped\n<!-- end generated -->\nmore\n"
    assert embed_generated(page, str(tmp_path)) == (
        "intro\n<!-- generated from table.md -->\n| a | b |\n|---|---|\n| 1 | 2 |\n<!-- end generated -->\nmore\n")
    with pytest.raises(FileNotFoundError, match="missing.md"):
        embed_generated(page.replace("table.md", "missing.md"), str(tmp_path))


def test_every_docs_page_is_in_sync_with_the_files_it_quotes():
    pages = sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))) + [os.path.join(REPO, "README.md")]
    quoted = []
    for path in pages:
        with open(path) as f:
            text = f.read()
        quoted += generated_sources(text)
        assert embed_generated(text, REPO) == text, f"{path} is out of date: run tools/sync_docs.py"
    assert "results/fashion_mnist_ablations/results.md" in quoted
