"""Tests of sagan_tf.layers.ConditionalBatchNorm."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

import strategies

from sagan_tf.layers import ConditionalBatchNorm


class ConditionalBatchNormTest(tf.test.TestCase, parameterized.TestCase):
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

    @parameterized.parameters(False, True)
    def test_statistics_are_global_under_mirrored_strategy(self, fused):
        # (with `fused`, several replicas take the unfused path: the fused op's statistics would be local)
        strategy = strategies.mirrored()
        with strategy.scope():
            layer = ConditionalBatchNorm(num_classes=0, momentum=0.0, fused=fused)
            layer.build((None, 2, 2, 3))
        # Replica 0 sees values around 0, replica 1 around 10: only cross-replica statistics
        # give a moving mean near 5.
        data = np.concatenate([np.zeros((2, 2, 2, 3)), np.full((2, 2, 2, 3), 10.0)]).astype(np.float32)
        dist = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(data).batch(4))
        for batch in dist:
            strategy.run(tf.function(lambda b: layer(b, training=True)), args=(batch,))
        self.assertAllClose(layer.batch_norm.moving_mean.numpy(), np.full(3, 5.0), atol=1e-4)

    def test_config_round_trip(self):
        layer = ConditionalBatchNorm(num_classes=7, momentum=0.9, epsilon=1e-4, fused=True)
        clone = ConditionalBatchNorm.from_config(layer.get_config())
        self.assertEqual((clone.num_classes, clone.momentum, clone.epsilon, clone.fused), (7, 0.9, 1e-4, True))
        with pytest.raises(ValueError, match="`fused` must be True or False"):
            ConditionalBatchNorm(num_classes=2, fused="yes")


def _unfolded(layer, x, labels, training):
    """The layer's output computed the plain way, with Keras' own batch norm on the layer's moving statistics:
    normalise, then scale by the class's gain and shift by its bias."""
    plain = keras.layers.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon, center=False,
                                               scale=False)
    plain.build(x.shape)
    plain.moving_mean.assign(layer.batch_norm.moving_mean)
    plain.moving_variance.assign(layer.batch_norm.moving_variance)
    normalized = plain(x, training=training)
    gain = tf.gather(layer.gain, labels)[:, None, None, :]
    bias = tf.gather(layer.bias, labels)[:, None, None, :]
    return normalized * gain + bias, plain


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_one_scale_and_shift_equal_normalising_then_scaling(training, fused):
    """The folded form (x * s + t), and the fused op followed by the gain and bias, give Keras' batch norm
    followed by the class's gain and bias, in training (batch statistics, and the same moving-average update)
    and in inference (moving statistics)."""
    layer = ConditionalBatchNorm(num_classes=3, momentum=0.8, fused=fused)
    rng = np.random.RandomState(3)
    x = tf.constant(rng.randn(8, 4, 4, 6).astype(np.float32) * 2.0 + 0.5)
    labels = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])
    layer.build(x.shape)
    layer.gain.assign(rng.randn(3, 6).astype(np.float32))
    layer.bias.assign(rng.randn(3, 6).astype(np.float32))
    layer.batch_norm.moving_mean.assign(rng.randn(6).astype(np.float32))
    layer.batch_norm.moving_variance.assign(rng.uniform(0.5, 2.0, 6).astype(np.float32))
    expected, plain = _unfolded(layer, x, labels, training)
    got = layer(x, labels, training=training)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.batch_norm.moving_mean, plain.moving_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.batch_norm.moving_variance, plain.moving_variance, rtol=1e-5, atol=1e-6)


def _full_size_ops(layer, shape, dtype=tf.float32):
    """The types of the training graph's ops whose output has the activations' shape, and the graph."""
    graph = tf.function(lambda a, b: layer(a, b, training=True)).get_concrete_function(
        tf.TensorSpec(shape, dtype), tf.TensorSpec((shape[0],), tf.int32)).graph
    size = int(np.prod(shape))
    full = [op.type for op in graph.get_operations() if op.type not in ("Placeholder", "Identity")
            and op.outputs and op.outputs[0].shape.rank == len(shape) and op.outputs[0].shape.num_elements() == size]
    return sorted(full), graph


def test_training_call_makes_two_full_size_passes_and_no_tensor_of_ones():
    """Normalisation and the class's gain and bias are one multiply and one add over the activations (the
    statistics' square aside), and the count comes from the shape, not from a reduced tensor of ones."""
    layer = ConditionalBatchNorm(num_classes=3)
    layer.build((4, 8, 8, 5))
    full, graph = _full_size_ops(layer, (4, 8, 8, 5))
    assert full == ["AddV2", "Mul", "Square"], full
    assert not [op for op in graph.get_operations() if op.type in ("OnesLike", "Fill")]


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_fused_training_call_normalises_in_the_fused_op(dtype):
    """With `fused`, a training call on images normalises in TensorFlow's fused batch-norm op, then applies the
    class's gain and bias as one multiply and one add, in the compute dtype."""
    layer = ConditionalBatchNorm(num_classes=3, fused=True, dtype=dtype)
    layer.build((4, 8, 8, 5))
    full, graph = _full_size_ops(layer, (4, 8, 8, 5), layer.compute_dtype)
    assert full == ["AddV2", "FusedBatchNormV3", "Mul"], full
    fused = [op for op in graph.get_operations() if op.type == "FusedBatchNormV3"]
    assert fused[0].outputs[0].dtype == layer.compute_dtype


def test_fused_training_call_takes_the_unfused_path_where_the_op_does_not_apply():
    """float64 (which the fused op does not take), vectors and a frozen batch norm (whose training call uses the
    moving statistics) normalise as without `fused`."""
    frozen = ConditionalBatchNorm(num_classes=3, fused=True)
    frozen.build((4, 8, 8, 5))
    frozen.batch_norm.trainable = False
    full, _ = _full_size_ops(frozen, (4, 8, 8, 5))
    assert full == ["AddV2", "Mul"], full
    for shape, dtype in (((4, 8, 8, 5), "float64"), ((4, 5), "float32")):
        layer = ConditionalBatchNorm(num_classes=3, fused=True, dtype=dtype)
        layer.build(shape)
        full, _ = _full_size_ops(layer, shape, dtype)
        assert "FusedBatchNormV3" not in full and "Square" in full, (shape, dtype, full)


def test_fused_gradients_equal_the_unfused_ones():
    """The fused op's gradient with respect to the inputs, gains and biases is the unfused path's."""
    rng = np.random.RandomState(5)
    x = tf.constant(rng.randn(6, 4, 4, 5).astype(np.float32) * 1.5 - 0.3)
    labels = tf.constant([0, 1, 2, 2, 1, 0])
    weights = rng.randn(6, 4, 4, 5).astype(np.float32)
    grads = []
    for fused in (False, True):
        layer = ConditionalBatchNorm(num_classes=3, fused=fused)
        layer.build(x.shape)
        layer.gain.assign(np.linspace(0.5, 1.5, 15, dtype=np.float32).reshape(3, 5))
        layer.bias.assign(np.linspace(-1, 1, 15, dtype=np.float32).reshape(3, 5))
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, labels, training=True) * weights)
        grads.append([tf.convert_to_tensor(g) for g in tape.gradient(loss, [x, layer.gain, layer.bias])])
    for unfused, fused in zip(*grads):
        np.testing.assert_allclose(fused, unfused, rtol=1e-4, atol=1e-4)


def test_mixed_bfloat16_computes_statistics_and_normalisation_in_float32():
    """Under mixed_bfloat16 the output is the float32 computation on the bfloat16 input, rounded once to
    bfloat16, and the moving statistics are float32 ones (statistics in bfloat16 miss both tolerances)."""
    x = tf.cast(tf.constant(np.random.RandomState(5).randn(8, 4, 4, 6).astype(np.float32) * 4.0 + 3.0),
                tf.bfloat16)
    labels = tf.zeros((8,), tf.int32)
    reference = ConditionalBatchNorm(num_classes=2)
    expected = reference(tf.cast(x, tf.float32), labels, training=True)
    mixed = ConditionalBatchNorm(num_classes=2, dtype=keras.DTypePolicy("mixed_bfloat16"))
    got = mixed(x, labels, training=True)
    assert got.dtype == tf.bfloat16
    # one rounding to bfloat16 (8 bits of mantissa): within half a step, 2^-9 of the value
    np.testing.assert_allclose(tf.cast(got, tf.float32), expected, rtol=2.0 ** -8, atol=1e-6)
    np.testing.assert_allclose(mixed.batch_norm.moving_mean, reference.batch_norm.moving_mean, rtol=1e-6)
    np.testing.assert_allclose(mixed.batch_norm.moving_variance, reference.batch_norm.moving_variance, rtol=1e-5)


def test_unsynchronized_statistics_keep_their_precision_far_from_zero():
    """Without synchronisation the variance is taken around the mean (`tf.nn.moments`, as Keras'): a batch
    at 300 with a spread of 0.05 keeps it, where E[x^2] - E[x]^2 in float32 loses it."""
    x = tf.constant(np.random.RandomState(7).randn(64, 4, 4, 4).astype(np.float32) * 0.05 + 300.0)
    layer = ConditionalBatchNorm(num_classes=0, momentum=0.0, synchronized=False)
    layer(x, training=True)
    np.testing.assert_allclose(layer.batch_norm.moving_variance, np.var(x.numpy(), axis=(0, 1, 2)), rtol=1e-2)


def test_float64_policy_computes_in_float64():
    layer = ConditionalBatchNorm(num_classes=2, dtype="float64")
    x = tf.constant(np.random.RandomState(9).randn(4, 3, 3, 2) * 2.0 + 1.0)
    y = layer(x, tf.constant([0, 1, 0, 1]), training=True)
    assert y.dtype == tf.float64
    np.testing.assert_allclose(y, (x - np.mean(x, (0, 1, 2))) / np.sqrt(np.var(x, (0, 1, 2)) + 1e-5), atol=1e-10)  # float32 misses 1e-10
