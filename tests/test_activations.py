"""Tests of sagan_tf.layers.activations.relu."""

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers.activations import relu


def _values(dtype):
    special = [0.0, -0.0, 2e-38, -2e-38, 3e38, -3e38, np.inf, -np.inf, 1.5, -2.25, 7e-3]
    rng = np.random.RandomState(0)
    return tf.constant(np.concatenate([special, rng.randn(3989) * 10.0]).reshape(-1, 4, 5, 1), dtype)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float32, tf.float16])
def test_relu_and_its_gradient_equal_tensorflows(dtype):
    """Values (infinities, the smallest normal numbers and both zeros among them) and gradients equal
    tf.nn.relu's."""
    x = _values(dtype)
    dy = tf.cast(tf.random.stateless_normal(x.shape, (1, 2)), dtype)
    for fn in (tf.function(relu), relu):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            ours, theirs = fn(x), tf.nn.relu(x)
        assert ours.dtype == dtype
        np.testing.assert_array_equal(ours.numpy().astype(np.float32), theirs.numpy().astype(np.float32))
        np.testing.assert_array_equal(tape.gradient(ours, x, dy).numpy().astype(np.float32),
                                      tape.gradient(theirs, x, dy).numpy().astype(np.float32))


def test_bfloat16_relu_computes_on_integers():
    """In bfloat16 the graph takes the maximum of 16-bit integers, not a bfloat16 ReLU."""
    graph = tf.function(relu).get_concrete_function(tf.TensorSpec((4, 4), tf.bfloat16)).graph
    types = {op.type for op in graph.get_operations()}
    assert "Relu" not in types and {"Bitcast", "Maximum"} <= types, types


def test_bfloat16_relu_edges():
    """A positive subnormal stays (TensorFlow's ReLU may flush it to 0) and a negative one gives 0; a NaN with the
    sign bit clear stays NaN and one with it set gives 0 (TensorFlow's keeps it)."""
    x = tf.bitcast(tf.constant([0x0040, -0x7FC0], tf.int16), tf.bfloat16)  # +-(2^-127 ~ 5.9e-39), subnormal
    np.testing.assert_array_equal(tf.bitcast(relu(x), tf.int16).numpy(), [0x0040, 0])
    nan = tf.constant([np.nan, -np.nan], tf.float32)
    signs = np.signbit(nan.numpy())
    assert not signs[0] and signs[1]
    got = relu(tf.cast(nan, tf.bfloat16)).numpy().astype(np.float32)
    assert np.isnan(got[0]) and got[1] == 0.0
