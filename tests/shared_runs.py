"""Trained runs shared by the whole suite, also across pytest-xdist workers: the first worker that needs a
run trains it under a file lock; the others wait for it and read it."""

import contextlib
import fcntl
import os


def shared_root(tmp_path_factory):
    """A folder every xdist worker of this session sees (the parent of the workers' own base temps)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _locked(path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def trained_once(tmp_path_factory, name, train):
    """The folder `<shared root>/<name>`, made by `train(folder)` exactly once per session. A failed
    `train` leaves no marker, so every worker that needs the run sees the failure."""
    folder = shared_root(tmp_path_factory) / name
    with _locked(str(folder) + ".lock"):
        marker = folder.parent / f"{name}.trained"  # beside the run: tests list the run's own files
        if not marker.exists():
            folder.mkdir(parents=True, exist_ok=True)
            train(folder)
            marker.touch()
    return folder
