"""Tests of sagan_tf.layers.ConditionalBatchNorm."""

import numpy as np
import pytest
import tensorflow as tf

import strategies

from sagan_tf.layers import ConditionalBatchNorm


class ConditionalBatchNormTest(tf.test.TestCase):
    def test_training_output_matches_numpy(self):
        layer = ConditionalBatchNorm(num_classes=3, epsilon=1e-5)
        x = np.random.RandomState(0).randn(6, 4, 4, 5).astype(np.float32) * 3 + 1
        labels = np.array([0, 1, 2, 2, 1, 0])
        layer.build(x.shape)
        gain = np.random.RandomState(1).randn(3, 5).astype(np.float32)
        bias = np.random.RandomState(2).randn(3, 5).astype(np.float32)
        layer.gain.assign(gain)
        layer.bias.assign(bias)
        y = layer(x, labels, training=True)
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        expected = gain[labels][:, None, None] * (x - mean) / np.sqrt(var + 1e-5) + bias[labels][:, None, None]
        self.assertAllClose(y, expected, rtol=1e-4, atol=1e-4)

    def test_labels_change_the_output_and_unconditional_ignores_them(self):
        layer = ConditionalBatchNorm(num_classes=4)
        x = tf.random.normal((2, 3, 3, 6))
        layer.build(x.shape)
        layer.gain.assign(tf.random.normal((4, 6)))
        self.assertNotAllClose(layer(x, tf.constant([0, 0])), layer(x, tf.constant([3, 3])))
        plain = ConditionalBatchNorm(num_classes=0)
        self.assertAllClose(plain(x, tf.constant([0, 0])), plain(x, tf.constant([1, 5])))
        self.assertEqual(plain.gain.shape, (1, 6))

    def test_missing_labels_and_bad_classes_raise(self):
        layer = ConditionalBatchNorm(num_classes=2)
        with pytest.raises(ValueError, match="needs `labels`"):
            layer(tf.zeros((1, 2, 2, 3)))
        with pytest.raises(ValueError, match="num_classes=-1"):
            ConditionalBatchNorm(num_classes=-1)

    def test_statistics_are_global_under_mirrored_strategy(self):
        strategy = strategies.mirrored()
        with strategy.scope():
            layer = ConditionalBatchNorm(num_classes=0, momentum=0.0)
            layer.build((None, 2, 2, 3))
        # Replica 0 sees values around 0, replica 1 around 10: only cross-replica statistics
        # give a moving mean near 5.
        data = np.concatenate([np.zeros((2, 2, 2, 3)), np.full((2, 2, 2, 3), 10.0)]).astype(np.float32)
        dist = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(data).batch(4))
        for batch in dist:
            strategy.run(tf.function(lambda b: layer(b, training=True)), args=(batch,))
        self.assertAllClose(layer.batch_norm.moving_mean.numpy(), np.full(3, 5.0), atol=1e-4)

    def test_config_round_trip(self):
        layer = ConditionalBatchNorm(num_classes=7, momentum=0.9, epsilon=1e-4)
        clone = ConditionalBatchNorm.from_config(layer.get_config())
        self.assertEqual((clone.num_classes, clone.momentum, clone.epsilon), (7, 0.9, 1e-4))
