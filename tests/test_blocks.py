"""Tests of the residual blocks."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from sagan_tf.layers import DiscriminatorBlock, GeneratorBlock, SpectralNormalization
from sagan_tf.layers.blocks import downsample_average, upsample_nearest


class BlocksTest(parameterized.TestCase, tf.test.TestCase):
    def test_resampling_helpers_match_numpy(self):
        x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
        self.assertAllEqual(upsample_nearest(x), x.repeat(2, axis=1).repeat(2, axis=2))
        self.assertAllClose(downsample_average(x), x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4)))

    @parameterized.parameters((True, 8, 16), (False, 8, 8), (False, 4, 8))
    def test_generator_block_shapes_and_shortcut(self, upsample, c_in, c_out):
        block = GeneratorBlock(c_out, num_classes=5, upsample=upsample)
        y = block(tf.random.normal((2, 4, 4, c_in)), tf.constant([0, 4]), training=True)
        size = 8 if upsample else 4
        self.assertEqual(y.shape, (2, size, size, c_out))
        self.assertEqual(block.shortcut is None, not upsample and c_in == c_out)
        self.assertIsInstance(block.conv1, SpectralNormalization)

    @parameterized.parameters((True, False, 3, 8), (True, True, 3, 8), (False, False, 8, 8))
    def test_discriminator_block_shapes(self, downsample, optimized, c_in, c_out):
        block = DiscriminatorBlock(c_out, downsample=downsample, optimized=optimized)
        y = block(tf.random.normal((2, 8, 8, c_in)), training=True)
        size = 4 if downsample else 8
        self.assertEqual(y.shape, (2, size, size, c_out))
        self.assertEqual(block.compute_output_shape((2, 8, 8, c_in)), (2, size, size, c_out))

    def test_optimized_block_matches_its_definition(self):
        block = DiscriminatorBlock(4, optimized=True, use_spectral_norm=False)
        x = tf.random.normal((1, 4, 4, 3))
        y = block(x)
        main = downsample_average(block.conv2(tf.nn.relu(block.conv1(x))))
        shortcut = block.shortcut(downsample_average(x))
        self.assertAllClose(y, main + shortcut, atol=1e-5)

    def test_identity_shortcut_block_is_residual(self):
        block = DiscriminatorBlock(4, downsample=False, use_spectral_norm=False)
        x = tf.random.normal((1, 4, 4, 4))
        y = block(x)
        self.assertIsNone(block.shortcut)
        self.assertAllClose(y - x, block.conv2(tf.nn.relu(block.conv1(tf.nn.relu(x)))), atol=1e-5)

    def test_configs_round_trip_through_keras_serialization(self):
        for block in (GeneratorBlock(8, num_classes=3, upsample=False), DiscriminatorBlock(6, downsample=False)):
            restored = keras.layers.deserialize(keras.layers.serialize(block))
            self.assertEqual(restored.get_config(), block.get_config())

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="out_channels=0"):
            GeneratorBlock(0)
        with pytest.raises(ValueError, match="always downsamples"):
            DiscriminatorBlock(4, downsample=False, optimized=True)
