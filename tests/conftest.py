"""Test set-up: two logical CPU devices (for MirroredStrategy tests) and a clean gin config."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Converted Inception weights and real statistics go to a per-session cache (subprocesses inherit it).
os.environ.setdefault("SAGAN_TF_CACHE", tempfile.mkdtemp(prefix="sagan_tf_test_cache_"))

import gin  # noqa: E402
import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its devices, i.e. before any op runs.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(autouse=True)
def clean_state():
    gin.clear_config()
    keras.utils.set_random_seed(1234)
    yield
    gin.clear_config()
    keras.backend.clear_session()


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run of `python -m sagan_tf.train` on the embedded default, shrunk: 4 steps, EMA, evaluation
    every 2 steps when the Inception weights are installed. Returns its model_dir (shared: read only)."""
    import subprocess
    import sys

    from inception_weights import weights_installed

    model_dir = tmp_path_factory.mktemp("tiny_run")
    params = ["Generator.base_channels = 4", "Discriminator.base_channels = 4", "build_input.global_batch_size = 4",
              "train.num_steps = 4", "SAGAN.ema_decay = 0.9", "train.checkpoint_every = 2"]
    if weights_installed():
        params += ["train.eval_every = 2", "Evaluator.num_samples = 24", "Evaluator.batch_size = 12",
                   "Evaluator.classifier = 'port'", "PeriodicEvaluation.compare_raw = True"]
    cmd = [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}"]
    result = subprocess.run(cmd + [f"--gin_param={p}" for p in params], capture_output=True, text=True, cwd=REPO,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir
