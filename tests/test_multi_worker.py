"""Two worker processes on localhost train with MultiWorkerMirroredStrategy and checkpoint."""

import json
import os
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_6_steps_and_write_one_checkpoint(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    cmd = [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={tmp_path}",
           "--strategy=multi_worker"]
    for binding in ("Generator.base_channels = 4", "Discriminator.base_channels = 4",
                    "build_input.global_batch_size = 4", "train.num_steps = 6", "train.log_every = 3",
                    "train.checkpoint_every = 1000", "train.sample_every = 1000"):
        cmd.append(f"--gin_param={binding}")
    processes = []
    for task in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}}))
        processes.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    outputs = [p.communicate(timeout=540) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    assert sorted(n for n in os.listdir(tmp_path / "checkpoints") if n.endswith(".index")) == ["ckpt-6.index"]
    assert (tmp_path / "operative_config.gin").exists()
    assert (tmp_path / "samples" / "step_0000006.png").exists()
