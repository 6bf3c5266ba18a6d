"""Pages that quote generated files keep them verbatim: a block

    <!-- generated from results/fashion_mnist_ablations/results.md -->
    ...
    <!-- end generated -->

is replaced by the named file's text (`tools/sync_docs.py`), so that a results page never carries a
retyped or stale table. Paths are relative to the repository root.
"""

import os
import re

_BLOCK = re.compile(r"(<!-- generated from (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def embed_generated(text, root):
    """`text` with every generated block refilled from its file under `root`; raises if a file is missing."""

    def refill(match):
        path = os.path.join(root, match.group("path"))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"A generated block names {match.group('path')}, which does not exist.")
        with open(path) as f:
            body = f.read().strip("\n")
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return _BLOCK.sub(refill, text)


def generated_sources(text):
    """The files that `text`'s generated blocks quote."""
    return [m.group("path") for m in _BLOCK.finditer(text)]
