"""Exact resume, proven from the command line: with `train.deterministic = True` and a seed, a run stopped
after a checkpoint (SIGTERM, or SIGKILL at any moment, even inside a checkpoint write) and rerun ends with
every checkpointed tensor bit-identical to the same run taken there without a stop: weights, optimiser
slots, EMA, step, z stream and the input position (whose effect is in every weight)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 40
TINY = ["Generator.base_channels = 4", "Discriminator.base_channels = 4", "build_input.global_batch_size = 8",
        "train.deterministic = True", "train.sample_every = 1000", "train.log_every = 10", "SAGAN.ema_decay = 0.9",
        "SAGAN.ema_start_step = 3", f"train.num_steps = {STEPS}"]
MIRRORED = ["--strategy=mirrored", "--num_cpu_devices=2"]


def _command(model_dir, flags, every):
    params = [*TINY, f"train.checkpoint_every = {every}", f"train.keep_checkpoints = {STEPS}"]
    return [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}",
            "--seed=5", *flags, *[f"--gin_param={p}" for p in params]]


def _train(model_dir, flags=(), every=6):
    result = subprocess.run(_command(model_dir, flags, every), capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _stop(model_dir, flags, sig, when, every=6):
    """Starts the run and sends `sig` as soon as `when(checkpoint folder entries)` holds."""
    process = subprocess.Popen(_command(model_dir, flags, every), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               cwd=REPO, text=True)
    folder = os.path.join(model_dir, "checkpoints")
    deadline = time.time() + 900
    while process.poll() is None and time.time() < deadline:
        entries = os.listdir(folder) if os.path.isdir(folder) else []
        if when(entries):
            process.send_signal(sig)
            break
        time.sleep(0.002)
    output = process.communicate(timeout=900)[0]
    return process.returncode, output


def _tensors(path):
    reader = tf.train.load_checkpoint(path)
    values = {}
    for name in reader.get_variable_to_shape_map():
        if "iterator" in name:  # the input position: a variant, compared through its effect on the weights
            continue
        if name.startswith("save_counter"):  # how many saves this folder saw (SIGTERM adds one), not state
            continue
        values[name] = reader.get_tensor(name)
    return values


def _assert_identical(straight_dir, resumed_dir):
    straight = _tensors(os.path.join(straight_dir, "checkpoints", f"ckpt-{STEPS}"))
    resumed = _tensors(os.path.join(resumed_dir, "checkpoints", f"ckpt-{STEPS}"))
    assert straight.keys() == resumed.keys()
    assert any("ema" in name for name in straight) and any("seed_state" in name for name in straight)
    different = [name for name in straight if not np.array_equal(straight[name], resumed[name])]
    assert not different, f"{len(different)} of {len(straight)} tensors differ, e.g. {different[:5]}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted runs, one per strategy."""
    runs = {}
    for name, flags in (("default", []), ("mirrored", MIRRORED)):
        runs[name] = str(tmp_path_factory.mktemp(f"straight_{name}"))
        _train(runs[name], flags)
    return runs


@pytest.mark.parametrize("strategy, sig", [("default", signal.SIGTERM), ("mirrored", signal.SIGKILL)])
def test_a_stopped_and_rerun_run_equals_the_uninterrupted_one(strategy, sig, straight, tmp_path):
    flags = MIRRORED if strategy == "mirrored" else []
    state = tmp_path / "checkpoints" / "checkpoint"  # names a checkpoint once its write is complete

    def saved(entries):
        return "checkpoint" in entries and state.exists() and "ckpt-" in state.read_text()

    code, output = _stop(str(tmp_path), flags, sig, saved)
    if sig == signal.SIGTERM:
        assert code == 0 and "stopped" in output, output[-2000:]  # saved a checkpoint and stopped early
    else:
        assert code == -signal.SIGKILL
    stopped_at = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
    assert 6 <= stopped_at < STEPS, "the stop landed after the run finished: nothing was resumed"
    resumed = _train(str(tmp_path), flags)
    assert f"resuming at step {stopped_at}" in resumed
    _assert_identical(straight[strategy], str(tmp_path))


def test_a_kill_inside_checkpoint_writes_never_loses_the_last_complete_checkpoint(straight, tmp_path):
    """A checkpoint every step; SIGKILL the moment a write's temporary files appear, three times."""
    writes = []
    for _ in range(3):
        code, _ = _stop(str(tmp_path), [], signal.SIGKILL,
                        lambda entries: any("_temp" in e for e in entries), every=1)
        if code != -signal.SIGKILL:
            break  # the run finished before a write was caught
        writes.append(code)
        latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
        if latest is not None:  # the state file names only complete checkpoints
            assert os.path.exists(latest + ".index") and os.path.exists(latest + ".data-00000-of-00001")
            tf.train.load_checkpoint(latest).get_variable_to_shape_map()
    assert writes, "no kill landed inside a checkpoint write"
    _train(str(tmp_path), every=1)
    _assert_identical(straight["default"], str(tmp_path))
