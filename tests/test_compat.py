"""Each internal that sagan_tf.compat relies on still exists and behaves as compat expects.

A failure names the internal and the versions: an upgrade moved it, and sagan_tf/compat.py needs a new
way to do the same thing.
"""

import importlib.metadata

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import compat


def _fail(internal, package, error):
    installed = importlib.metadata.version(package)
    pytest.fail(f"{internal} changed: sagan_tf/compat.py was written for {package} {compat.WRITTEN_FOR[package]}, "
                f"this is {installed} ({type(error).__name__}: {error}). Find its replacement and update compat.py.")


def test_written_for_names_every_package():
    assert set(compat.WRITTEN_FOR) == {"tensorflow", "keras", "gin-config", "tensorflow-gan"}


def test_global_seed_reads_tensorflow_context():
    try:
        tf.random.set_seed(5)
        first = compat.global_seed()
        tf.random.set_seed(None)
        second = compat.global_seed()
    except Exception as error:  # noqa: BLE001
        _fail("tensorflow.python.eager.context.global_seed", "tensorflow", error)
    assert (first, second) == (5, None), ("tensorflow.python.eager.context.global_seed no longer returns the seed "
                                          f"of tf.random.set_seed: {first}, {second}")


def test_no_autocast_reads_a_float32_variable_as_float32():
    variable = keras.Variable(np.ones((2, 2), np.float32), dtype="float32")
    try:
        from keras.src.backend.common.variables import AutocastScope  # noqa: PLC0415

        with AutocastScope("float16"):
            cast = variable.value
            with compat.no_autocast():
                raw = variable.value
    except Exception as error:  # noqa: BLE001
        _fail("keras.src.backend.common.variables.AutocastScope", "keras", error)
    assert cast.dtype == tf.float16, "AutocastScope no longer casts a float32 variable: check keras' autocast"
    assert raw.dtype == tf.float32, "compat.no_autocast (AutocastScope(None)) no longer reads the variable unconverted"


def test_sublayers_finds_nested_layers():
    inner = keras.layers.Dense(2, name="inner")
    block = keras.Sequential([inner], name="block")
    model = keras.Sequential([keras.Input((3,)), block], name="outer")
    try:
        found = compat.sublayers(model)
    except Exception as error:  # noqa: BLE001
        _fail("keras.layers.Layer._flatten_layers", "keras", error)
    assert inner in found and block in found, f"Layer._flatten_layers no longer recurses: {found}"


def test_onednn_enabled_is_a_bool():
    try:
        enabled = compat.onednn_enabled()
    except Exception as error:  # noqa: BLE001
        _fail("tensorflow.python.util._pywrap_util_port.IsMklEnabled", "tensorflow", error)
    assert isinstance(enabled, bool)


def test_registered_configurables_lists_gin_selectors():
    @gin.configurable("compat_probe", module="sagan_tf_test")
    def probe(x=1):
        return x

    try:
        selectors = compat.registered_configurables()
    except Exception as error:  # noqa: BLE001
        _fail("gin.config._REGISTRY", "gin-config", error)
    assert "sagan_tf_test.compat_probe" in selectors, "gin.config._REGISTRY no longer maps selectors to configurables"
    assert probe() == 1


def test_tfgan_eval_imports_without_the_package_init():
    try:
        module = compat.import_tfgan_eval()
    except Exception as error:  # noqa: BLE001
        _fail("the layout tensorflow_gan/python/eval", "tensorflow-gan", error)
    assert callable(module.frechet_classifier_distance_from_activations)


def test_the_packaged_gin_reader_comes_before_gins_package_resource_reader(tmp_path, monkeypatch):
    from gin import config as gin_config

    from sagan_tf import config, gin_registry  # noqa: F401  (gin_registry: the configurables the file binds)

    try:
        readers = [reader for reader, _ in gin_config._FILE_READERS]
    except Exception as error:  # noqa: BLE001
        _fail("gin.config._FILE_READERS", "gin-config", error)
    assert readers.index(config._open_packaged) == 1, "the packaged-config reader is not second in gin's list"
    # A namespace package named like the configs' folder: gin's own reader raises on it.
    (tmp_path / "experiments").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    config.parse(["experiments/fashion_mnist_aligned.gin"])  # includes experiments/fashion_mnist_quality.gin
    assert gin.query_parameter("SAGAN.fake_labels") == "sampled"


def test_adam_slots_are_the_variables_momentum_and_velocity():
    variables = [keras.Variable(np.ones((2, 3), "float32"), name="w"), keras.Variable(np.ones(4, "float32"), name="b")]
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build(variables)
    try:
        slots = [compat.adam_slots(optimizer, v) for v in variables]
    except Exception as error:  # noqa: BLE001
        _fail("keras.optimizers.Adam._get_variable_index / _momentums / _velocities", "keras", error)
    for variable, (momentum, velocity) in zip(variables, slots):
        assert momentum.shape == velocity.shape == variable.shape
        assert "momentum" in momentum.path and "velocity" in velocity.path and momentum is not velocity
    optimizer.apply([tf.fill((2, 3), 2.0), tf.fill((4,), 3.0)], variables)  # beta_1 0.9: m = 0.1 g
    np.testing.assert_allclose(slots[1][0].numpy(), np.full(4, 0.3), rtol=1e-6)
