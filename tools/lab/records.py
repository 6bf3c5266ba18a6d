"""The lab's one record format: a JSON object carrying the command that made it, the commit it ran at, the
machine it ran on, and its figures. Written atomically with the library's writer (`sagan_tf.records`)."""

import os
import shlex
import subprocess
import sys

from sagan_tf.records import read_json, write_json  # noqa: F401  (read_json: for the lab's readers)

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def commit():
    """The checkout's commit ('<sha>' or '<sha>+changes' when the tree differs), or None without git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=CHECKOUT,
                             timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=CHECKOUT, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+changes" if dirty else "")) if sha else None


def provenance(machine=None):
    """{"command", "commit", "machine"} of this process; `machine`: a description already taken."""
    from lab import machine as machine_lib  # noqa: PLC0415

    return {"command": shlex.join([os.path.basename(sys.executable), *sys.argv]), "commit": commit(),
            "machine": machine if machine is not None else machine_lib.description()}


def record(figures, machine=None):
    """`figures` with the provenance keys added (the figures' own keys win)."""
    return {**provenance(machine), **figures}


def write(path, figures, machine=None):
    """Writes `record(figures)` to `path` (creating its folder); returns the record."""
    value = record(figures, machine)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, value)
    return value


def write_report(path, table, figures):
    """A report tool's output: the markdown `table` at `path` and `record(figures)` beside it (`.json`),
    the table printed, then the line naming what was written."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(table)
    write(os.path.splitext(path)[0] + ".json", figures)
    print(table)
    print(f"Wrote {path}")
