"""Two worker processes on localhost train with MultiWorkerMirroredStrategy: they end with the same weights,
lay out their checkpoints as docs/training.md says, and resume exactly after both are killed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, EVERY = 6, 2
BINDINGS = ("Generator.base_channels = 4", "Discriminator.base_channels = 4", "build_input.global_batch_size = 4",
            f"train.num_steps = {STEPS}", "train.log_every = 2", f"train.checkpoint_every = {EVERY}",
            "train.sample_every = 1000", "train.keep_checkpoints = 2", "train.deterministic = True")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(model_dir):
    """Both workers of a fresh two-worker cluster (new ports) training in `model_dir`."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    cmd = [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}",
           "--strategy=multi_worker", "--seed=5", *(f"--gin_param={b}" for b in BINDINGS)]
    processes = []
    for task in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}}))
        processes.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    return processes


def _finish(processes, seconds=540):
    """Waits for both workers (killing both if one is late: a lone worker would wait for its peer forever)."""
    try:
        outputs = [p.communicate(timeout=seconds) for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        raise
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    return [out for out, _ in outputs]


def _kill_after_first_checkpoint(model_dir, processes, seconds=400):
    """SIGKILLs both workers once both have written a checkpoint; returns the chief's latest then."""
    chief, worker = model_dir / "checkpoints", model_dir / "workers" / "worker_1"
    deadline = time.time() + seconds
    while time.time() < deadline and all(p.poll() is None for p in processes):
        if tf.train.latest_checkpoint(str(chief)) and tf.train.latest_checkpoint(str(worker)):
            break
        time.sleep(0.1)
    for p in processes:
        p.send_signal(signal.SIGKILL)
    for p in processes:
        p.communicate(timeout=60)
    return tf.train.latest_checkpoint(str(chief))


def _tensors(path):
    """{key: value} of a checkpoint's model and optimiser tensors; the input iterator's position is left out
    (each worker reads its own shard)."""
    reader = tf.train.load_checkpoint(path)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if not key.startswith("iterator/") and key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _assert_same_tensors(a, b):
    first, second = _tensors(a), _tensors(b)
    assert sorted(first) == sorted(second)
    assert any(key.startswith("generator_optimizer") for key in first)
    assert any(key.startswith("generator/") for key in first)
    different = [key for key in first if not np.array_equal(first[key], second[key])]
    assert not different, f"{len(different)} of {len(first)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("two_workers")
    return model_dir, _finish(_start_workers(model_dir))


def test_two_workers_end_with_identical_weights_and_documented_folders(uninterrupted):
    model_dir, outputs = uninterrupted
    chief = model_dir / "checkpoints"
    # The chief keeps train.keep_checkpoints = 2; worker 1 keeps its latest only, in workers/worker_1.
    assert sorted(n for n in os.listdir(chief) if n.endswith(".index")) == [f"ckpt-{STEPS - EVERY}.index",
                                                                           f"ckpt-{STEPS}.index"]
    assert os.listdir(model_dir / "workers") == ["worker_1"]
    assert sorted(n for n in os.listdir(model_dir / "workers" / "worker_1") if n.endswith(".index")) == [
        f"ckpt-{STEPS}.index"]
    assert (model_dir / "operative_config.gin").exists() and (model_dir / "train").is_dir()
    assert f"Done: steps 0-{STEPS}" in outputs[0] and "Done:" not in outputs[1]  # only the chief summarises
    _assert_same_tensors(str(chief / f"ckpt-{STEPS}"), str(model_dir / "workers" / "worker_1" / f"ckpt-{STEPS}"))
    # The workers read different shards: their input positions are their own.
    chief_reader = tf.train.load_checkpoint(str(chief / f"ckpt-{STEPS}"))
    assert any(key.startswith("iterator/") for key in chief_reader.get_variable_to_shape_map())


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Both workers SIGKILLed after their first checkpoint, then both rerun to the end: (model_dir, killed at,
    the rerun's outputs)."""
    model_dir = tmp_path_factory.mktemp("resumed")
    killed_at = _kill_after_first_checkpoint(model_dir, _start_workers(model_dir))
    return model_dir, killed_at, _finish(_start_workers(model_dir))


def test_both_workers_killed_then_rerun_resume_and_end_with_identical_weights(resumed):
    model_dir, killed_at, outputs = resumed
    assert killed_at is not None and not killed_at.endswith(f"ckpt-{STEPS}"), killed_at
    # The chief restores its checkpoint; worker 1 its own save of the same step (its own input position).
    chief = [out for out in outputs if "Done:" in out]  # only the chief prints the summary
    worker = [out for out in outputs if "Done:" not in out]
    assert len(chief) == len(worker) == 1
    assert f"Resumed from {killed_at}" in chief[0]
    assert f"Resumed from {model_dir / 'workers' / 'worker_1' / os.path.basename(killed_at)}" in worker[0]
    _assert_same_tensors(str(model_dir / "checkpoints" / f"ckpt-{STEPS}"),
                         str(model_dir / "workers" / "worker_1" / f"ckpt-{STEPS}"))


def test_resumed_workers_end_at_the_uninterrupted_weights(uninterrupted, resumed):
    # Deterministic and seeded: the resumed run should end where the uninterrupted one did, bit for bit.
    _assert_same_tensors(str(resumed[0] / "checkpoints" / f"ckpt-{STEPS}"),
                         str(uninterrupted[0] / "checkpoints" / f"ckpt-{STEPS}"))
