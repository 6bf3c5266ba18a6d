"""Crash-safe checkpoints: a run killed (SIGKILL) inside its checkpoint writes, again and again, always
restores its last complete checkpoint and, rerun, ends exactly where the uninterrupted run did
(tests/resume_runs.py)."""

import os
import signal

import pytest
import tensorflow as tf

import resume_runs as runs


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return runs.straight(tmp_path_factory, "default")[0]


def test_a_kill_inside_checkpoint_writes_never_loses_the_last_complete_checkpoint(straight, tmp_path):
    """A checkpoint every step; SIGKILL the moment a write's temporary files appear, three times."""
    writes = []
    for _ in range(3):
        code, _ = runs.stop(str(tmp_path), [], signal.SIGKILL,
                            lambda entries: any("_temp" in e for e in entries), every=1)
        if code != -signal.SIGKILL:
            break  # the run finished before a write was caught
        writes.append(code)
        latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
        if latest is not None:  # the state file names only complete checkpoints
            assert os.path.exists(latest + ".index") and os.path.exists(latest + ".data-00000-of-00001")
            tf.train.load_checkpoint(latest).get_variable_to_shape_map()
    assert writes, "no kill landed inside a checkpoint write"
    # The rerun saves every 6 steps, as the uninterrupted run did: the cadence changes when state is
    # written, not the state.
    runs.train(str(tmp_path))
    runs.assert_identical(straight, str(tmp_path))
