"""Exact resume, proven from the command line: with `train.deterministic = True` and a seed, a run stopped
after a checkpoint (SIGTERM here; SIGKILL in test_resume_kill.py and test_resume_mirrored.py) and rerun ends
with every checkpointed tensor bit-identical to the same run taken there without a stop: weights, optimiser
slots, EMA, step, z stream and the input position, random flips included (whose effect is in every
weight). The runs: tests/resume_runs.py."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

import resume_runs as runs
from resume_runs import STEPS


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return runs.straight(tmp_path_factory, "default")[0]


def test_a_sigterm_stopped_and_rerun_run_equals_the_uninterrupted_one(straight, tmp_path):
    state = tmp_path / "checkpoints" / "checkpoint"  # names a checkpoint once its write is complete

    def saved(entries):
        return "checkpoint" in entries and state.exists() and "ckpt-" in state.read_text()

    code, output = runs.stop(str(tmp_path), [], signal.SIGTERM, saved)
    stopped_at = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
    # Saved a checkpoint where it was, said so, and stopped early with exit code 0.
    assert code == 0 and f"SIGTERM: saved a checkpoint at step {stopped_at}" in output, output[-2000:]
    assert 6 <= stopped_at < STEPS, "the stop landed after the run finished: nothing was resumed"
    resumed = runs.train(str(tmp_path))
    assert f"Resumed from {tmp_path / 'checkpoints' / f'ckpt-{stopped_at}'}" in resumed
    assert f"resuming at step {stopped_at}" in resumed
    runs.assert_identical(straight, str(tmp_path))


def test_another_seed_starts_elsewhere(straight, tmp_path):
    """The seed reaches the initial weights, z and the data order: six steps at another seed end at other
    weights than the same six steps at seed 5 (which the resumed runs reproduce bit for bit)."""
    runs.train(str(tmp_path), seed=6, steps=6)
    ours = runs.tensors(os.path.join(straight, "checkpoints", "ckpt-6"))
    other = runs.tensors(str(tmp_path / "checkpoints" / "ckpt-6"))
    kernels = [name for name in ours if "kernel" in name and "OPTIMIZER_SLOT" not in name]
    assert len(kernels) > 10 and all(not np.array_equal(ours[name], other[name]) for name in kernels)
