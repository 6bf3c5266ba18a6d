"""Exact resume under `--strategy=mirrored --num_cpu_devices=2`: a run SIGKILLed after a checkpoint and rerun
ends bit-identical to the uninterrupted one, which took two train steps per call where the stopped one took
one. The uninterrupted run is also the suite's check of what a mirrored two-replica run prints and writes
(tests/resume_runs.py)."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

import resume_runs as runs
from resume_runs import MIRRORED, STEPS
from shared_runs import logged


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return runs.straight(tmp_path_factory, "mirrored")


def test_a_mirrored_run_with_two_steps_per_call_says_and_writes_what_it_did(straight):
    """`--strategy=mirrored --num_cpu_devices=2` once died on its first step (per-replica outputs in the
    tf.range loop of steps_per_execution)."""
    model_dir, output = straight
    # Not a terminal: plain lines, a start line naming what the flags chose, and a summary with the next commands.
    assert "MirroredStrategy with 2 replicas, global batch 8" in output and "new run" in output
    assert "TensorFlow oneDNN on (--onednn=on)" in output and "precision float32." in output
    assert "convolution filter gradients: matrix products (forced)" in output
    assert f"step 10/{STEPS}  d_loss" in output and "\r" not in output and "\x1b" not in output
    assert f"Done: steps 0-{STEPS}" in output and f"-m sagan_tf.evaluate --model_dir={model_dir}" in output
    saved = sorted(int(n[5:-6]) for n in os.listdir(os.path.join(model_dir, "checkpoints")) if n.endswith(".index"))
    assert saved == [*range(6, STEPS, 6), STEPS]
    assert sorted(logged(model_dir, "d_loss")) == list(range(10, STEPS + 1, 10))
    with open(os.path.join(model_dir, "operative_config.gin")) as f:
        assert f.read().count("Generator.base_channels = 4") == 1
    # After the first call (2 steps) and at the end.
    assert sorted(os.listdir(os.path.join(model_dir, "samples"))) == ["step_0000002.png", f"step_{STEPS:07d}.png"]


def test_a_sigkilled_and_rerun_mirrored_run_equals_the_uninterrupted_one(straight, tmp_path):
    state = tmp_path / "checkpoints" / "checkpoint"  # names a checkpoint once its write is complete

    def saved(entries):
        return "checkpoint" in entries and state.exists() and "ckpt-" in state.read_text()

    code, _ = runs.stop(str(tmp_path), MIRRORED, signal.SIGKILL, saved)
    assert code == -signal.SIGKILL
    stopped_at = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
    assert 6 <= stopped_at < STEPS, "the stop landed after the run finished: nothing was resumed"
    resumed = runs.train(str(tmp_path), MIRRORED)
    assert f"Resumed from {tmp_path / 'checkpoints' / f'ckpt-{stopped_at}'}" in resumed
    assert f"resuming at step {stopped_at}" in resumed
    runs.assert_identical(straight[0], str(tmp_path))
    # What the log shows: the means over the same steps, read after a loop of two steps per call in the
    # uninterrupted run and after each single step here (log points after the first one past the restart).
    for tag in ("d_loss", "g_loss", "g_grad_norm"):
        straight_log, resumed_log = logged(straight[0], tag), logged(str(tmp_path), tag)
        later = [step for step in resumed_log if step - 10 >= stopped_at]
        assert later, f"no log point after the restart at {stopped_at}"
        np.testing.assert_allclose([resumed_log[s] for s in later], [straight_log[s] for s in later], rtol=1e-6,
                                   err_msg=tag)


def test_a_mirrored_run_resumed_on_one_device_restarts_its_input_and_says_so(straight, tmp_path):
    """A position saved with two replicas (batches of half the global batch) does not fit one device's batches:
    the weights, optimisers and z stream resume, the input starts again, and a line says why."""
    import shutil

    shutil.copytree(straight[0], tmp_path / "run")
    output = runs.train(str(tmp_path / "run"), ("--precision=float32",), steps=STEPS + 6)  # as it was trained
    assert (f"was saved with a global batch of 8 over 2 replicas and 1 input pipeline; this run reads a global "
            f"batch of 8 over 1 replica and 1 input pipeline: its input starts again") in output
    assert f"Resumed from {tmp_path / 'run' / 'checkpoints' / f'ckpt-{STEPS}'} at step {STEPS}" in output
    assert f"Done: steps {STEPS}-{STEPS + 6}" in output
    folder = tmp_path / "run" / "checkpoints"
    before, later = (runs.tensors(str(folder / f"ckpt-{step}")) for step in (STEPS, STEPS + 6))
    assert list(later["input_layout/.ATTRIBUTES/VARIABLE_VALUE"]) == [8, 1, 1]
    # The weights went on from the restored ones (six steps move them little; a fresh start would not be near).
    kernels = [name for name in before if "kernel" in name and "OPTIMIZER" not in name and "ema" not in name]
    assert len(kernels) > 10
    for name in kernels:
        assert np.linalg.norm(later[name] - before[name]) < 0.2 * np.linalg.norm(before[name]), name
    # A checkpoint without an input position (train.checkpoint_input = False), resumed by a run that saves one.
    output = runs.train(str(tmp_path / "run"), ("--precision=float32", "--gin_param=train.checkpoint_input = False"),
                        steps=STEPS + 12)
    assert "This run keeps no input position (train.checkpoint_input = False" in output  # a run that saves none
    assert f"Done: steps {STEPS + 6}-{STEPS + 12}" in output
    output = runs.train(str(tmp_path / "run"), ("--precision=float32",), steps=STEPS + 18)
    assert f"ckpt-{STEPS + 12} holds no input position" in output and f"Done: steps {STEPS + 12}-{STEPS + 18}" in output
