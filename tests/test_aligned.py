"""The options behind gin/experiments/fashion_mnist_aligned.gin each do what they say."""

import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import ConditionalBatchNorm, Discriminator, Generator, config, gin_registry  # noqa: F401
from sagan_tf.eval import evaluator
from sagan_tf.models import factory
from sagan_tf.models.sagan import SAGAN
from sagan_tf.trainer import TrainConfig


def _tiny_sagan(**kwargs):
    model = SAGAN(Generator(resolution=32, num_classes=4, base_channels=4, out_channels=3,
                            attention_resolutions=()),
                  Discriminator(resolution=32, num_classes=4, base_channels=4, attention_resolutions=()), **kwargs)
    model.build_all(3)
    model.compile(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9), keras.optimizers.Adam(4e-4, beta_1=0.0))
    return model


def test_aligned_config_builds_the_reference_recipe():
    config.parse(["experiments/fashion_mnist_aligned.gin"])
    settings = TrainConfig(input_spec=None)
    assert settings.generator_optimizer().epsilon == 1e-8
    assert settings.discriminator_optimizer().epsilon == 1e-8
    model = factory.build_model(factory.DataFacts(num_classes=10, resolution=32, channels=3))
    assert model.fake_labels == "sampled" and model.ema_decay is None and model.d_sn_update_in_g_step
    assert model.generator.out_channels == 3
    assert model.generator.bias_initialization == model.discriminator.bias_initialization == "fan_in_uniform"
    norms = [norm for block in model.generator.blocks for norm in (block.bn1, block.bn2)]
    assert norms and all(n.initialization == "biggan" and n.momentum == 0.9 for n in norms)
    assert evaluator.Evaluator().channel_mean


def test_bn_momentum_sets_the_moving_average_update():
    layer = ConditionalBatchNorm(2, momentum=0.9)
    x = tf.random.normal((16, 4, 4, 3)) * 3.0 + 2.0
    layer(x, tf.zeros((16,), tf.int32), training=True)
    batch_mean = tf.reduce_mean(x, axis=(0, 1, 2)).numpy()
    np.testing.assert_allclose(layer.batch_norm.moving_mean.numpy(), 0.1 * batch_mean, rtol=1e-5)


def test_biggan_initialization_draws_gains_around_one_and_biases_around_zero():
    unit = ConditionalBatchNorm(10, initialization="unit")
    unit.build((None, 4, 4, 64))
    np.testing.assert_array_equal(unit.gain.numpy(), 1.0)
    np.testing.assert_array_equal(unit.bias.numpy(), 0.0)
    biggan = ConditionalBatchNorm(10, initialization="biggan")
    biggan.build((None, 4, 4, 64))
    limit = np.sqrt(6.0 / (10 + 64))  # Glorot-uniform of a [classes, channels] embedding
    gain, bias = biggan.gain.numpy() - 1.0, biggan.bias.numpy()
    for values in (gain, bias):
        assert np.abs(values).max() <= limit and values.std() > limit / 3
    assert not np.allclose(gain, bias)
    assert ConditionalBatchNorm.from_config(biggan.get_config()).initialization == "biggan"


def test_sampled_fake_labels_are_uniform_and_not_the_batch_labels():
    model = _tiny_sagan(fake_labels="sampled", seed=3)
    labels = tf.zeros((4096,), tf.int32)
    drawn = model._fake_labels(labels, 4096).numpy()
    counts = np.bincount(drawn, minlength=4)
    assert counts.min() > 900 and counts.max() < 1150  # uniform over 4 classes
    data = _tiny_sagan(fake_labels="data")
    np.testing.assert_array_equal(data._fake_labels(labels, 4096).numpy(), 0)


def _power_iteration_vectors(discriminator):
    return [v.numpy().copy() for v in discriminator.non_trainable_variables if "u" in v.path.rsplit("/", 1)[-1]]


def test_d_sn_update_in_g_step_advances_the_discriminator_power_iteration():
    images = tf.random.uniform((4, 32, 32, 3), -1, 1)
    labels = tf.constant([0, 1, 2, 3])
    changed = {}
    for flag in (False, True):
        keras.utils.set_random_seed(7)
        model = _tiny_sagan(d_sn_update_in_g_step=flag)
        before = _power_iteration_vectors(model.discriminator)
        assert before, "no spectral-norm u vectors found"
        model.train_step((images, labels))
        changed[flag] = _power_iteration_vectors(model.discriminator)
    assert any(not np.allclose(a, b) for a, b in zip(changed[False], changed[True]))


def test_channel_mean_reads_generated_images_as_grey():
    class Striped(keras.Model):
        dim_z = 2

        def call(self, z, labels=None, training=False):
            ones = tf.ones((tf.shape(z)[0], 4, 4, 1))
            return tf.concat([ones * -1.0, ones * 0.0, ones * 0.5], axis=-1)

    plain = next(evaluator.generator_batches(Striped(), 0, 3, 3))[0]
    grey = next(evaluator.generator_batches(Striped(), 0, 3, 3, reduce_channels=True))[0]
    assert plain.shape == (3, 4, 4, 3) and grey.shape == (3, 4, 4, 1)
    expected = np.round(((-1.0 + 0.0 + 0.5) / 3 + 1.0) * 127.5) / 127.5 - 1.0
    np.testing.assert_allclose(grey, expected, atol=1e-6)


def test_channel_mean_of_replicated_grey_is_the_grey_image():
    grey = tf.constant(np.random.RandomState(0).randint(0, 256, (5, 4, 4, 1)), tf.float32) / 127.5 - 1.0
    replicated = tf.repeat(grey, 3, axis=-1)
    np.testing.assert_array_equal(
        evaluator.images_lib.quantize(evaluator.channel_mean(replicated)).numpy(), grey.numpy())


def test_gin_binds_the_options():
    gin.parse_config(["SAGAN.d_sn_update_in_g_step = True", "Generator.bn_initialization = 'biggan'",
                      "Generator.attention_resolutions = ()", "Discriminator.attention_resolutions = ()"])
    model = factory.build_model(factory.DataFacts(num_classes=2, resolution=32, channels=1))
    assert model.d_sn_update_in_g_step
    assert model.generator.get_config()["bn_initialization"] == "biggan"
    assert SAGAN.from_config(model.get_config()).d_sn_update_in_g_step


def _bias_limits(model):
    """{bias path: (values, 1/sqrt(fan_in) of the kernel beside it)} for every convolution and dense layer."""
    kernels = {v.path: v for v in model.weights if v.path.endswith("/kernel")}
    out = {}
    for v in model.weights:
        if v.path.endswith("/bias") and v.path[:-len("bias")] + "kernel" in kernels:
            fan_in = int(np.prod(kernels[v.path[:-len("bias")] + "kernel"].shape[:-1]))
            out[v.path] = (v.numpy(), fan_in ** -0.5)
    return out


def test_fan_in_uniform_biases_start_as_pytorch_draws_them():
    """PyTorch (and so BigGAN-PyTorch) starts every Conv2d and Linear bias uniform on +-1/sqrt(fan_in):
    D's first convolution on 3 channels (fan-in 27) up to 0.19, its 1x1 shortcut (fan-in 3) up to 0.58."""
    keras.utils.set_random_seed(0)
    networks = (Generator(resolution=32, num_classes=4, base_channels=16, out_channels=3, attention_resolutions=(),
                          bias_initialization="fan_in_uniform"),
                Discriminator(resolution=32, num_classes=4, base_channels=16, attention_resolutions=(),
                              bias_initialization="fan_in_uniform"))
    networks[0].build()
    networks[1].build((None, 32, 32, 3))
    biases = {**_bias_limits(networks[0]), **_bias_limits(networks[1])}
    assert len(biases) == 22, sorted(biases)  # G: linear, 3 blocks x 3 convs, output conv; D: 10 convs, linear
    assert abs(biases["discriminator/block1/conv1_sn/conv1/bias"][1] - 27 ** -0.5) < 1e-9
    assert abs(biases["discriminator/block1/shortcut_sn/shortcut/bias"][1] - 3 ** -0.5) < 1e-9
    for path, (values, limit) in biases.items():
        assert np.abs(values).max() <= limit, path
        if values.size >= 64:  # 64 uniform draws fill the interval: the largest is above 0.9 x limit
            assert np.abs(values).max() > 0.9 * limit and values.std() > 0.45 * limit, path
    shortcuts = [values for path, (values, _) in biases.items() if path.endswith("shortcut/bias")]
    assert not np.array_equal(shortcuts[0], shortcuts[1])  # every layer draws its own
    rebuilt = Discriminator.from_config(networks[1].get_config())
    assert rebuilt.bias_initialization == "fan_in_uniform"
    plain = Discriminator(resolution=32, num_classes=4, base_channels=16, attention_resolutions=())
    plain.build((None, 32, 32, 3))
    assert all(not values.any() for values, _ in _bias_limits(plain).values())
    with pytest.raises(ValueError, match="bias_initialization"):
        Generator(resolution=32, num_classes=4, bias_initialization="pytorch")


def test_gin_binds_the_bias_initialization():
    gin.parse_config(["Generator.bias_initialization = 'fan_in_uniform'",
                      "Discriminator.bias_initialization = 'fan_in_uniform'",
                      "Generator.attention_resolutions = ()", "Discriminator.attention_resolutions = ()"])
    model = factory.build_model(factory.DataFacts(num_classes=2, resolution=32, channels=3))
    assert model.generator.bias_initialization == model.discriminator.bias_initialization == "fan_in_uniform"
    assert model.discriminator.blocks[0].get_config()["bias_initialization"] == "fan_in_uniform"
    assert np.abs(keras.ops.convert_to_numpy(model.discriminator.blocks[0].conv1.layer.bias)).max() > 0.1


def test_aligned_config_takes_the_reference_step():
    """tests/data/reference_step.npz holds two training steps of BigGAN-PyTorch's SA-GAN networks, written by
    tools/reference_step_check.py's reference half (G_ch = D_ch = 2, plain SGD): start state, z, labels, real
    batches, losses, end state. The aligned config's networks and train step, started from that state on the
    same draws, end at the same losses and weights; without D's power iteration in the G step they do not."""
    import reference_step_check

    data = os.path.join(os.path.dirname(__file__), "data", "reference_step.npz")
    report = reference_step_check.compare(data, ["experiments/fashion_mnist_aligned.gin"])
    assert report["steps"] == 2 and report["weights"] == 69  # every trainable tensor of G and D
    assert report["loss_rtol"] < 1e-4 and report["largest_weight_differences"][0][0] < 5e-5, report
    gin.clear_config()
    report = reference_step_check.compare(data, ["experiments/fashion_mnist_aligned.gin"],
                                          ["SAGAN.d_sn_update_in_g_step = False"])
    assert report["loss_rtol"] > 1e-3, report


def _recipe(gin_file, bindings=()):
    """The settings the aligned config changes, as `gin_file` with `bindings` builds them."""
    gin.clear_config()
    config.parse([gin_file], bindings)
    settings = TrainConfig(input_spec=None)
    channels = gin.query_parameter("%CHANNELS")
    model = factory.build_model(factory.DataFacts(num_classes=10, resolution=32, channels=channels))
    norm = model.generator.blocks[0].bn1
    recipe = {"channels": (channels, model.generator.out_channels), "fake_labels": model.fake_labels,
              "bn_momentum": norm.momentum, "bn_initialization": norm.initialization,
              "adam_epsilon": (settings.generator_optimizer().epsilon, settings.discriminator_optimizer().epsilon),
              "d_sn_update_in_g_step": model.d_sn_update_in_g_step,
              "bias_initialization": (model.generator.bias_initialization, model.discriminator.bias_initialization)}
    gin.clear_config()
    return recipe


def test_one_factor_list_puts_back_one_setting_per_run():
    """tools/experiments/fashion_mnist_aligned_one_factor_1500.json: its base is the aligned recipe with the biases
    at 0 (the list's own bindings), every run puts back exactly one more setting to the quality config's value,
    and together the base and the runs cover every setting."""
    import json

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools", "experiments",
                        "fashion_mnist_aligned_one_factor_1500.json")
    with open(path) as f:
        spec = json.load(f)
    assert spec["gin_files"] == ["experiments/fashion_mnist_aligned.gin"]
    quality = _recipe("experiments/fashion_mnist_quality.gin")
    aligned = _recipe(spec["gin_files"][0])
    assert all(quality[key] != aligned[key] for key in quality), (quality, aligned)
    base = _recipe(spec["gin_files"][0], spec["gin_params"])
    put_back = [key for key in base if base[key] != aligned[key]]
    assert put_back == ["bias_initialization"] and base["bias_initialization"] == quality["bias_initialization"]
    for run in spec["runs"]:
        recipe = _recipe(spec["gin_files"][0], spec["gin_params"] + run["gin_params"])
        changed = [key for key in recipe if recipe[key] != base[key]]
        assert len(changed) == 1 and recipe[changed[0]] == quality[changed[0]], (run["name"], recipe)
        put_back += changed
    assert sorted(put_back) == sorted(quality)
