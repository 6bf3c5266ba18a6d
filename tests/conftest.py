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
