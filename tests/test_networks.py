"""Tests of the Generator and the projection Discriminator."""

import json
import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from sagan_tf import Discriminator, Generator, parameter_summary
from sagan_tf.layers import ConditionalBatchNorm


def _count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


class NetworksTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.parameters((32, (16,)), (64, (32,)), (128, (32,)), (256, (64,)))
    def test_shapes_per_resolution(self, resolution, attention):
        g = Generator(resolution=resolution, num_classes=10, base_channels=4, attention_resolutions=attention)
        d = Discriminator(resolution=resolution, num_classes=10, base_channels=4, attention_resolutions=attention)
        z = tf.random.normal((2, 128))
        labels = tf.constant([3, 7])
        images = g(z, labels, training=True)
        self.assertEqual(images.shape, (2, resolution, resolution, 3))
        self.assertAllInRange(images, -1.0, 1.0)
        logits = d(images, labels, training=True)
        self.assertEqual(logits.shape, (2,))
        self.assertEqual(logits.dtype, tf.float32)

    def test_attention_placement_and_maps(self):
        g = Generator(resolution=64, num_classes=0, base_channels=4, attention_resolutions=(16, 32))
        d = Discriminator(resolution=64, num_classes=0, base_channels=4, attention_resolutions=(16,))
        images, g_maps = g(tf.random.normal((2, 128)), return_attention=True)
        _, d_maps = d(images, return_attention=True)
        # official style: keys pooled 2x2.
        self.assertEqual({k: v.shape for k, v in g_maps.items()},
                         {"attention16": (2, 256, 64), "attention32": (2, 1024, 256)})
        self.assertEqual({k: v.shape for k, v in d_maps.items()}, {"attention16": (2, 256, 64)})

    def test_class_label_changes_outputs(self):
        g = Generator(resolution=32, num_classes=5, base_channels=4, attention_resolutions=())
        d = Discriminator(resolution=32, num_classes=5, base_channels=4, attention_resolutions=())
        g.build()
        for layer in g._flatten_layers():
            if isinstance(layer, ConditionalBatchNorm):  # gains start at 1: make classes differ
                layer.gain.assign(tf.random.normal(layer.gain.shape))
        z = tf.random.normal((1, 128))
        a, b = g(z, tf.constant([0])), g(z, tf.constant([4]))
        self.assertGreater(float(tf.reduce_max(tf.abs(a - b))), 1e-3)
        self.assertNotAllClose(d(a, tf.constant([0])), d(a, tf.constant([4])))

    def test_unconditional_and_grayscale(self):
        g = Generator(resolution=32, num_classes=0, base_channels=4, out_channels=1, attention_resolutions=())
        d = Discriminator(resolution=32, num_classes=0, base_channels=4, attention_resolutions=())
        images = g(tf.random.normal((3, 128)))
        self.assertEqual(images.shape, (3, 32, 32, 1))
        self.assertEqual(d(images).shape, (3,))
        self.assertIsNone(d.embedding)

    def test_imagenet_128_parameter_counts_match_reference_sagan(self):
        g, d = Generator(), Discriminator()
        g.build()
        d.build()
        # BigGAN-PyTorch's SA-GAN ImageNet configuration: 42.0M / 39.5M parameters.
        self.assertAllClose(_count(g) / 1e6, 42.0, atol=0.15)
        self.assertAllClose(_count(d) / 1e6, 39.5, atol=0.15)
        table = parameter_summary(g, d)
        self.assertIn(f"{_count(g):,}", table)
        self.assertIn("attention32", table)
        # docs/architecture.md prints these networks' totals (trainable | non-trainable): they are today's.
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                               "architecture.md")) as f:
            page = f.read()
        for network, name, z in ((g, "Generator", f"z {g.dim_z}, "), (d, "Discriminator", "")):
            (size,) = network.attention_resolutions
            non_trainable = sum(int(np.prod(w.shape)) for w in network.non_trainable_weights)
            row = (f"| {name} ({z}ch {network.base_channels}, multipliers "
                   f"{','.join(map(str, network.channel_multipliers))}, attention at {size}x{size}) "
                   f"| {_count(network):,} | {non_trainable:,} |")
            self.assertTrue(row in page, f"docs/architecture.md has no row {row}")

    def test_keras_saving_round_trip(self):
        g = Generator(resolution=32, num_classes=3, base_channels=4, attention_resolutions=(16,))
        d = Discriminator(resolution=32, num_classes=3, base_channels=4, attention_resolutions=(16,))
        z, labels = tf.random.normal((2, 128)), tf.constant([0, 2])
        g(z, labels, training=True)  # moves u and the batch-norm statistics away from init
        images = g(z, labels)
        logits = d(images, labels)
        path = self.get_temp_dir()
        g.save(f"{path}/g.keras")
        d.save(f"{path}/d.keras")
        g2 = keras.saving.load_model(f"{path}/g.keras")
        d2 = keras.saving.load_model(f"{path}/d.keras")
        self.assertIsInstance(g2, Generator)
        self.assertAllClose(g2(z, labels), images, atol=1e-5)
        self.assertAllClose(d2(images, labels), logits, atol=1e-4)
        self.assertEqual(Generator.from_config(g.get_config()).get_config(), g.get_config())

    def test_mixed_precision_outputs_float32(self):
        g = Generator(resolution=32, num_classes=2, base_channels=4, attention_resolutions=(16,),
                      dtype="mixed_bfloat16")
        images = g(tf.random.normal((2, 128)), tf.constant([0, 1]), training=True)
        self.assertEqual(images.dtype, tf.float32)
        self.assertEqual(g.blocks[0].conv1.compute_dtype, "bfloat16")

    def test_invalid_configurations_name_the_problem(self):
        with pytest.raises(ValueError, match=r"cannot place attention at \[128\]"):
            Generator(resolution=64, attention_resolutions=(128,))
        with pytest.raises(ValueError, match="resolution=48"):
            Discriminator(resolution=48)
        with pytest.raises(ValueError, match="channel_multipliers"):
            Generator(resolution=64, channel_multipliers=(4, 2))
        with pytest.raises(ValueError, match="pass `labels`"):
            Generator(resolution=32, num_classes=3, base_channels=4)(tf.zeros((1, 128)))

    def test_gin_binds_the_constructors(self):
        gin.parse_config([
            "Generator.resolution = 32",
            "Generator.base_channels = 4",
            "Generator.attention_resolutions = (8,)",
            "Discriminator.use_spectral_norm = False",
        ])
        g = Generator(num_classes=0)
        self.assertEqual((g.resolution, g.base_channels, g.attention_resolutions), (32, 4, (8,)))
        self.assertFalse(Discriminator(resolution=32, base_channels=4, attention_resolutions=()).use_spectral_norm)
        # Keras layers take **kwargs, so gin accepts the name; constructing then names it.
        gin.parse_config("Generator.bogus = 1")
        with pytest.raises((TypeError, ValueError), match="bogus"):
            Generator(num_classes=0)


def _small_pair(kernel_initializer="glorot_uniform"):
    g = Generator(resolution=32, num_classes=10, base_channels=8, attention_resolutions=(16,),
                  kernel_initializer=kernel_initializer)
    d = Discriminator(resolution=32, num_classes=10, base_channels=8, attention_resolutions=(16,),
                      kernel_initializer=kernel_initializer)
    g.build()
    d.build((None, 32, 32, 3))
    return g, d


@pytest.mark.parametrize("initializer", ["glorot_uniform", "orthogonal", {"class_name": "GlorotUniform",
                                                                         "config": {"seed": 3}}])
def test_every_layer_starts_from_its_own_weights(initializer):
    """One initializer instance handed to every layer gave all same-shaped kernels identical values
    (41 pairs in this pair of networks, among them every attention layer's query == key)."""
    g, d = _small_pair(initializer)
    kernels = [w for w in g.weights + d.weights if w.path.endswith(("kernel", "embeddings"))]
    assert len(kernels) > 30
    equal = [(a.path, b.path) for i, a in enumerate(kernels) for b in kernels[i + 1:]
             if a.shape == b.shape and np.array_equal(a.numpy(), b.numpy())]
    assert not equal, equal
    query = next(w for w in g.weights if "attention16/query" in w.path and w.path.endswith("kernel"))
    key = next(w for w in g.weights if "attention16/key" in w.path and w.path.endswith("kernel"))
    assert not np.allclose(query.numpy(), key.numpy())


def test_the_global_seed_fixes_the_initial_weights():
    keras.utils.set_random_seed(5)
    first = [w.numpy() for w in sum(map(lambda m: m.weights, _small_pair()), [])]
    keras.utils.set_random_seed(5)
    again = [w.numpy() for w in sum(map(lambda m: m.weights, _small_pair()), [])]
    keras.utils.set_random_seed(6)
    other = [w.numpy() for w in sum(map(lambda m: m.weights, _small_pair()), [])]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other) if a.std() > 0)


def test_the_networks_pass_their_settings_to_every_block_and_record_them():
    rules = [{"kernel": "1x1", "min_positions": 64}]
    g = Generator(resolution=32, num_classes=0, base_channels=4, attention_resolutions=(),
                  fused_resampling=False, filter_gradient=rules)
    d = Discriminator(resolution=32, num_classes=0, base_channels=4, attention_resolutions=(), filter_gradient="matmul")
    g.build()
    d.build()
    assert all(not b.fused_resampling and b.filter_gradient == tuple(rules) for b in g.blocks)
    assert g.output_conv.filter_gradient == tuple(rules)
    assert all(b.fused_resampling and b.filter_gradient == "matmul" for b in d.blocks)
    for network in (g, d):
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(network)))
        restored = keras.saving.deserialize_keras_object(config)
        assert (restored.fused_resampling, restored.filter_gradient) == (network.fused_resampling,
                                                                         network.filter_gradient)
        del config["config"]["fused_resampling"], config["config"]["filter_gradient"]
        legacy = keras.saving.deserialize_keras_object(config)  # a run stored before the settings existed
        assert (legacy.fused_resampling, legacy.filter_gradient) == (True, "onednn")
        assert all((b.fused_resampling, b.filter_gradient) == (True, "onednn") for b in legacy.blocks)


def test_gin_binds_the_settings():
    gin.parse_config(["Generator.fused_resampling = False", "Discriminator.filter_gradient = 'matmul'"])
    assert Generator(resolution=32, num_classes=0, base_channels=4).fused_resampling is False
    assert Discriminator(resolution=32, num_classes=0, base_channels=4,
                         attention_resolutions=()).filter_gradient == "matmul"
    with pytest.raises(ValueError, match="filter_gradient='auto'"):
        Generator(resolution=32, num_classes=0, base_channels=4, filter_gradient="auto")


def plain_and_fused_generators(seed):
    """A small generator and a copy with `bn_fused` holding the same weights (shared with tests/test_ema.py)."""
    keras.utils.set_random_seed(seed)
    plain = Generator(resolution=32, num_classes=3, base_channels=4, attention_resolutions=(16,))
    plain.build()
    fused = Generator.from_config({**plain.get_config(), "bn_fused": True})
    fused.build()
    fused.set_weights(plain.get_weights())
    return plain, fused


def test_fused_batch_norms_train_as_the_unfused_ones():
    """`bn_fused` reaches every batch norm (the blocks' conditional ones and the output one, kept in the config)
    and, in float32 with the same weights, a training call gives the unfused generator's images and moving
    statistics; in bfloat16 every batch norm of the training graph runs in the fused op on bfloat16 activations."""
    plain, fused = plain_and_fused_generators(seed=2)
    assert all(b.bn1.fused and b.bn2.fused for b in fused.blocks) and not plain.blocks[0].bn1.fused
    z, labels = tf.random.normal((6, 128)), tf.constant([0, 1, 2, 2, 1, 0])
    gamma = np.linspace(0.5, 1.5, plain.output_bn.gamma.shape[0]).astype(np.float32)
    for network in (plain, fused):
        network.output_bn.moving_mean.assign(tf.fill(network.output_bn.moving_mean.shape, 0.3))
        network.output_bn.gamma.assign(gamma)
        network.output_bn.beta.assign(gamma - 1.0)
    np.testing.assert_allclose(fused(z, labels, training=True), plain(z, labels, training=True), atol=2e-4)
    for a, b in zip(plain.weights, fused.weights):
        if "moving" in a.path:
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    assert not np.allclose(fused.output_bn.moving_mean.numpy(), 0.3)
    np.testing.assert_allclose(fused(z, labels), plain(z, labels), atol=1e-5)
    ops = tf.function(lambda a, b: fused(a, b, training=True)).get_concrete_function(
        tf.TensorSpec((6, 128)), tf.TensorSpec((6,), tf.int32)).graph.get_operations()
    assert sum(op.type == "FusedBatchNormV3" for op in ops) == 2 * len(fused.blocks) + 1
    mixed = Generator.from_config({**fused.get_config(), "dtype": "mixed_bfloat16"})
    mixed.build()
    ops = tf.function(lambda a, b: mixed(a, b, training=True)).get_concrete_function(
        tf.TensorSpec((6, 128)), tf.TensorSpec((6,), tf.int32)).graph.get_operations()
    norms = [op for op in ops if op.type == "FusedBatchNormV3"]
    assert len(norms) == 2 * len(mixed.blocks) + 1 and all(op.inputs[0].dtype == tf.bfloat16 for op in norms)
    assert all(op.inputs[1].dtype == tf.float32 for op in norms)  # gains (the output norm's gamma) in float32
