"""Trained runs shared by the whole suite, also across pytest-xdist workers: the first worker that needs a
run trains it under a file lock; the others wait for it and read it."""

import contextlib
import fcntl
import glob
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def run_to_files(cmd, folder):
    """Runs `cmd` from the checkout with stdout and stderr going to files beside `folder` (<folder>.out,
    <folder>.err), as in a job's log: tests of the output read them (`command_output`)."""
    with open(f"{folder}.out", "w") as out, open(f"{folder}.err", "w") as err:
        code = subprocess.run(cmd, stdout=out, stderr=err, cwd=REPO, timeout=1200).returncode
    with open(f"{folder}.err") as err:
        assert code == 0, err.read()[-3000:]


def command_output(folder):
    """(stdout, stderr) of the command that made a shared `folder` (`run_to_files`)."""
    with open(f"{folder}.out") as out, open(f"{folder}.err") as err:
        return out.read(), err.read()


def logged(model_dir, tag):
    """{step: value} of a scalar in a run's TensorBoard events, as written (float32)."""
    import tensorflow as tf

    values = {}
    for path in sorted(glob.glob(os.path.join(model_dir, "train", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            values.update({event.step: tf.make_ndarray(v.tensor).item() for v in event.summary.value if v.tag == tag})
    return values
