"""Exact resume, proven from the command line: with `train.deterministic = True` and a seed, a run stopped
after a checkpoint (SIGTERM, or SIGKILL at any moment, even inside a checkpoint write) and rerun ends with
every checkpointed tensor bit-identical to the same run taken there without a stop: weights, optimiser
slots, EMA, step, z stream and the input position, random flips included (whose effect is in every
weight). The uninterrupted runs are also the suite's check of what a mirrored two-replica run with
two steps per call prints and writes, and of a seed's reach."""

import glob
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
        "SAGAN.ema_start_step = 3", "build_input.random_flip = True", f"train.num_steps = {STEPS}"]
# Every flag a multi-GPU user may pass, and two train steps per call (the tf.range loop with per-replica outputs).
MIRRORED = ["--strategy=mirrored", "--num_cpu_devices=2", "--onednn=on", "--precision=float32",
            "--filter_gradient=matmul", "--gin_param=train.steps_per_execution = 2"]


def _command(model_dir, flags, every, seed=5):
    params = [*TINY, f"train.checkpoint_every = {every}", f"train.keep_checkpoints = {STEPS}"]
    return [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}",
            f"--seed={seed}", *flags, *[f"--gin_param={p}" for p in params]]


def _train(model_dir, flags=(), every=6, seed=5):
    result = subprocess.run(_command(model_dir, flags, every, seed), capture_output=True, text=True, cwd=REPO,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _logged(model_dir, tag):
    """{step: value} of a scalar in the run's TensorBoard events, as written (float32)."""
    values = {}
    for path in sorted(glob.glob(os.path.join(model_dir, "train", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            values.update({event.step: tf.make_ndarray(v.tensor).item() for v in event.summary.value if v.tag == tag})
    return values


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
    """The uninterrupted runs, one per strategy: {strategy: model_dir}, and the mirrored run's output."""
    runs = {}
    for name, flags in (("default", []), ("mirrored", MIRRORED)):
        runs[name] = str(tmp_path_factory.mktemp(f"straight_{name}"))
        runs[f"{name}_output"] = _train(runs[name], flags)
    return runs


def test_a_mirrored_run_with_two_steps_per_call_says_and_writes_what_it_did(straight):
    """`--strategy=mirrored --num_cpu_devices=2` once died on its first step (per-replica outputs in the
    tf.range loop of steps_per_execution)."""
    model_dir, output = straight["mirrored"], straight["mirrored_output"]
    # Not a terminal: plain lines, a start line naming what the flags chose, and a summary with the next commands.
    assert "MirroredStrategy with 2 replicas, global batch 8" in output and "new run" in output
    assert "TensorFlow oneDNN on (--onednn=on)" in output and "precision float32." in output
    assert "convolution filter gradients: matrix products (forced)" in output
    assert "step 10/40  d_loss" in output and "\r" not in output and "\x1b" not in output
    assert f"Done: steps 0-{STEPS}" in output and f"-m sagan_tf.evaluate --model_dir={model_dir}" in output
    checkpoints = sorted(int(n[5:-6]) for n in os.listdir(os.path.join(model_dir, "checkpoints")) if n.endswith(".index"))
    assert checkpoints == [*range(6, STEPS, 6), STEPS]
    assert sorted(_logged(model_dir, "d_loss")) == [10, 20, 30, 40]
    with open(os.path.join(model_dir, "operative_config.gin")) as f:
        assert f.read().count("Generator.base_channels = 4") == 1
    # After the first call (2 steps) and at the end.
    assert sorted(os.listdir(os.path.join(model_dir, "samples"))) == ["step_0000002.png", f"step_{STEPS:07d}.png"]


def test_another_seed_starts_elsewhere(straight, tmp_path):
    """The seed reaches the initial weights, z and the data order: six steps at another seed end at other
    weights than the same six steps at seed 5 (which the resumed runs here reproduce bit for bit)."""
    _train(str(tmp_path), seed=6)
    ours = _tensors(os.path.join(straight["default"], "checkpoints", "ckpt-6"))
    other = _tensors(str(tmp_path / "checkpoints" / "ckpt-6"))
    kernels = [name for name in ours if "kernel" in name and "OPTIMIZER_SLOT" not in name]
    assert len(kernels) > 10 and all(not np.array_equal(ours[name], other[name]) for name in kernels)


@pytest.mark.parametrize("strategy, sig", [("default", signal.SIGTERM), ("mirrored", signal.SIGKILL)])
def test_a_stopped_and_rerun_run_equals_the_uninterrupted_one(strategy, sig, straight, tmp_path):
    flags = MIRRORED if strategy == "mirrored" else []
    state = tmp_path / "checkpoints" / "checkpoint"  # names a checkpoint once its write is complete

    def saved(entries):
        return "checkpoint" in entries and state.exists() and "ckpt-" in state.read_text()

    code, output = _stop(str(tmp_path), flags, sig, saved)
    stopped_at = int(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).rsplit("-", 1)[1])
    if sig == signal.SIGTERM:  # saved a checkpoint where it was, said so, and stopped early
        assert code == 0 and f"SIGTERM: saved a checkpoint at step {stopped_at}" in output, output[-2000:]
    else:
        assert code == -signal.SIGKILL
    assert 6 <= stopped_at < STEPS, "the stop landed after the run finished: nothing was resumed"
    resumed = _train(str(tmp_path), flags)
    assert f"Resumed from {tmp_path / 'checkpoints' / f'ckpt-{stopped_at}'}" in resumed
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
