"""A run directory written before the run stored its networks' Keras configs still restores, exports
and resumes, to the numbers the code of its day computed (tests/data/legacy_run/README.md)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf

from sagan_tf import restore
from sagan_tf.export import export_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "data", "legacy_run")


def legacy_copy(tmp_path):
    target = tmp_path / "legacy_run"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("expected.npz", "README.md"))
    return str(target)


def test_legacy_run_restores_and_exports_to_the_same_numbers(tmp_path):
    expected = np.load(os.path.join(FIXTURE, "expected.npz"))
    run = restore.load_run(legacy_copy(tmp_path))
    assert run.step == int(expected["step"]) == 3
    assert run.model.ema_generator is not None
    z, labels = expected["z"], expected["labels"]
    np.testing.assert_allclose(run.model.sampling_generator(z, labels, training=False), expected["ema_images"],
                               atol=1e-6)
    np.testing.assert_allclose(run.model.generator(z, labels, training=False), expected["raw_images"], atol=1e-6)
    np.testing.assert_allclose(run.model.discriminator(expected["d_images"], labels[:4], training=False),
                               expected["d_logits"], rtol=1e-5, atol=1e-5)
    path, description = export_run(os.path.join(tmp_path, "legacy_run"), str(tmp_path / "export"))
    assert description["ema"] and description["step"] == 3
    served = tf.saved_model.load(path).signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))
    np.testing.assert_array_equal(served["images"].numpy(), expected["served"])


def test_legacy_run_resumes_training_from_its_checkpoint(tmp_path):
    model_dir = legacy_copy(tmp_path)
    cmd = [sys.executable, "-m", "sagan_tf.train", f"--gin_file={os.path.join(model_dir, 'operative_config.gin')}",
           f"--model_dir={model_dir}", "--gin_param=train.num_steps = 4"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming at step 3" in result.stdout
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")
