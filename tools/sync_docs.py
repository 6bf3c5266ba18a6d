"""Refills the generated blocks of the docs pages from the files they quote (see `lab.docs`).

  .venv/bin/python tools/sync_docs.py [--check]

Run it after `tools/run_experiments.py` rewrote a results table; `--check` only says which pages are out
of date (exit 1), as the test suite does.
"""

import glob
import os
import sys

from absl import flags

from lab.docs import embed_generated
from sagan_tf import commands  # (no TensorFlow)

FLAGS = flags.FLAGS
flags.DEFINE_bool("check", False, "Only report pages whose generated blocks are out of date.")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    del argv
    stale = []
    for path in sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))) + [os.path.join(REPO, "README.md")]:
        with open(path) as f:
            text = f.read()
        updated = embed_generated(text, REPO)
        if updated != text:
            stale.append(os.path.relpath(path, REPO))
            if not FLAGS.check:
                with open(path, "w") as f:
                    f.write(updated)
    if FLAGS.check and stale:
        print("Out of date: " + ", ".join(stale) + " (run tools/sync_docs.py).")
        sys.exit(1)
    print(("Updated: " + ", ".join(stale)) if stale else "Every generated block is up to date.")


if __name__ == "__main__":
    commands.run("tools/sync_docs.py", main, __doc__)
