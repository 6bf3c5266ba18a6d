"""The runs of the exact-resume tests (tests/test_resume*.py): one tiny deterministic configuration, run
straight, stopped and rerun from the command line, and compared tensor by tensor."""

import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from shared_runs import REPO, command_output, run_to_files, trained_once

STEPS = 30  # checkpoints every 6 steps, log points every 10
TINY = ["Generator.base_channels = 4", "Discriminator.base_channels = 4", "build_input.global_batch_size = 8",
        "train.deterministic = True", "train.sample_every = 1000", "train.log_every = 10", "SAGAN.ema_decay = 0.9",
        "SAGAN.ema_start_step = 3", "build_input.random_flip = True"]
# Every flag a multi-GPU user may pass.
MIRRORED = ["--strategy=mirrored", "--num_cpu_devices=2", "--onednn=on", "--precision=float32",
            "--filter_gradient=matmul"]
# Two train steps per call (the tf.range loop with per-replica outputs): the uninterrupted mirrored run takes
# them, its stopped and resumed twin one step per call, so the comparison also shows that steps_per_execution
# changes how steps are dispatched, not what they compute.
TWO_STEPS_PER_CALL = ["--gin_param=train.steps_per_execution = 2"]


def command(model_dir, flags, every, seed=5, steps=STEPS):
    params = [*TINY, f"train.num_steps = {steps}", f"train.checkpoint_every = {every}", f"train.keep_checkpoints = {STEPS}"]
    return [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}",
            f"--seed={seed}", *flags, *[f"--gin_param={p}" for p in params]]


def train(model_dir, flags=(), every=6, seed=5, steps=STEPS):
    result = subprocess.run(command(model_dir, flags, every, seed, steps), capture_output=True, text=True, cwd=REPO,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def stop(model_dir, flags, sig, when, every=6):
    """Starts the run and sends `sig` as soon as `when(checkpoint folder entries)` holds."""
    process = subprocess.Popen(command(model_dir, flags, every), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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


def tensors(path):
    reader = tf.train.load_checkpoint(path)
    values = {}
    for name in reader.get_variable_to_shape_map():
        if "iterator" in name:  # the input position: a variant, compared through its effect on the weights
            continue
        if name.startswith("save_counter"):  # how many saves this folder saw (SIGTERM adds one), not state
            continue
        values[name] = reader.get_tensor(name)
    return values


def assert_identical(straight_dir, resumed_dir):
    straight = tensors(os.path.join(straight_dir, "checkpoints", f"ckpt-{STEPS}"))
    resumed = tensors(os.path.join(resumed_dir, "checkpoints", f"ckpt-{STEPS}"))
    assert straight.keys() == resumed.keys()
    assert any("ema" in name for name in straight) and any("seed_state" in name for name in straight)
    different = [name for name in straight if not np.array_equal(straight[name], resumed[name])]
    assert not different, f"{len(different)} of {len(straight)} tensors differ, e.g. {different[:5]}"


def straight(tmp_path_factory, strategy):
    """The uninterrupted run of a strategy ("default" or "mirrored"), made once per session for every
    xdist worker: (model_dir, its stdout)."""
    flags = MIRRORED + TWO_STEPS_PER_CALL if strategy == "mirrored" else []

    folder = trained_once(tmp_path_factory, f"resume_straight_{strategy}",
                          lambda folder: run_to_files(command(str(folder), flags, every=6), folder))
    return str(folder), command_output(folder)[0]
