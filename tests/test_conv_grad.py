"""The convolution whose filter gradient may be taken with matrix products (sagan_tf.layers.conv_grad): its
gradients equal TensorFlow's, its `filter_gradient` argument picks the shapes, and SAGAN's layers pass it on.
The rule tables of "auto" are the hardware policy's (tests/test_machine.py)."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import machine
from sagan_tf.layers import conv_grad
from sagan_tf.layers.spectral_norm import SpectralNormalization


def _gradients(convolution, x, w):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = convolution(x, w)
        loss = tf.reduce_sum(y * tf.cos(y))  # a gradient that is not the same at every position
    return (y, *tape.gradient(loss, [x, w]))


def _custom_gradient_ops(function, *args):
    """IdentityN ops in the traced function: tf.custom_gradient's marker, i.e. the matrix-product path ran."""
    graph = tf.function(function).get_concrete_function(*args).graph
    return sum(op.type == "IdentityN" for op in graph.get_operations())


# Narrow shapes take the exact copies; from conv_grad.FLAT_MIN_WIDTH on, the row ranges of one padded copy
# (channels that are and are not a multiple of 16, which decides whether TensorFlow's slices are views).
WIDE = conv_grad.FLAT_MIN_WIDTH


@pytest.mark.parametrize("shape", [(2, 8, 8, 5, 7, 3), (3, 6, 10, 4, 6, 1), (1, 9, 9, 3, 2, 5),
                                   (2, 5, WIDE, 16, 8, 3), (3, 4, WIDE + 1, 3, 5, 3), (1, 6, WIDE + 4, 16, 4, 5)])
def test_matmul_filter_gradient_equals_tensorflows(shape):
    batch, height, width, c_in, c_out, k = shape
    x = tf.random.stateless_normal([batch, height, width, c_in], seed=[1, 2])
    w = tf.random.stateless_normal([k, k, c_in, c_out], seed=[3, 4])
    expected = _gradients(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"), x, w)
    matmul = lambda a, b: conv_grad.conv2d(a, b, "matmul")  # noqa: E731
    assert _custom_gradient_ops(matmul, x, w) == 1
    for convolution in (matmul, tf.function(matmul)):
        got = _gradients(convolution, x, w)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4 * np.abs(b.numpy()).max())
    # The direct function too, against TensorFlow's kernel.
    dy = tf.random.stateless_normal([batch, height, width, c_out], seed=[5, 6])
    reference = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[k, k, c_in, c_out], out_backprop=dy,
                                                strides=[1, 1, 1, 1], padding="SAME")
    np.testing.assert_allclose(conv_grad.matmul_filter_gradient(x, dy, k).numpy(), reference.numpy(),
                               rtol=1e-4, atol=1e-4 * np.abs(reference.numpy()).max())


@pytest.mark.parametrize("limit, allows", [(None, True), ("ALL", True), ("avx512_core", True),
                                           ("AVX512_CORE_BF16", True), ("AVX10_1_512", True), ("AMX_BF16", True),
                                           ("AVX2", False), ("AVX2_VNNI_2", False), ("SSE41", False)])
def test_the_kernel_level_follows_onednns_isa_limit(limit, allows):
    assert machine.isa_limit_allows_avx512(limit) is allows


RULES = ({"kernel": "1x1", "min_positions": 64},
         {"kernel": "kxk", "min_positions": 16, "max_positions": 64, "min_channels": 8})


@pytest.mark.parametrize("height, width, c_in, c_out, k, expected", [
    (8, 8, 1, 1, 1, True), (8, 7, 1, 1, 1, False),  # 1x1: from 64 positions, any channels
    (4, 4, 8, 9, 3, True), (8, 8, 9, 8, 5, True),  # kxk: 16 to 64 positions with min(C_in, C_out) >= 8
    (3, 5, 8, 8, 3, False), (8, 9, 8, 8, 3, False), (4, 4, 7, 9, 3, False), (16, 16, 64, 64, 3, False),
])
def test_a_rule_list_takes_the_shapes_its_rules_match(height, width, c_in, c_out, k, expected):
    assert conv_grad.use_matmul_filter_gradient(RULES, height, width, c_in, c_out, k) is expected
    assert conv_grad.use_matmul_filter_gradient(list(RULES), height, width, c_in, c_out, k) is expected
    assert conv_grad.use_matmul_filter_gradient("matmul", height, width, c_in, c_out, k) is True
    assert conv_grad.use_matmul_filter_gradient("onednn", height, width, c_in, c_out, k) is False


def test_conv2d_follows_its_argument():
    x, w = tf.zeros([1, 8, 8, 8]), tf.zeros([3, 3, 8, 8])
    assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d(a, b, "matmul"), x, w) == 1
    assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d(a, b, "onednn"), x, w) == 0
    assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d(a, b, RULES), x, w) == 1
    assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d(a, b, RULES), tf.zeros([1, 16, 16, 8]), w) == 0


@pytest.mark.parametrize("bad", ["auto", "fast", {"kernel": "1x1"}, [{"kernel": "3x3"}], [{"kernel": "1x1", "x": 1}],
                                 [None], 3])
def test_a_bad_filter_gradient_is_named(bad):
    with pytest.raises(ValueError, match="`filter_gradient` must be"):
        conv_grad.check_filter_gradient(bad)
    with pytest.raises(ValueError, match="`filter_gradient` must be"):
        SpectralNormalization(keras.layers.Conv2D(2, 3, padding="same"), filter_gradient=bad)


def test_spectrally_normalised_conv_uses_it_with_the_same_gradients():
    x = tf.random.stateless_normal([2, 8, 8, 4], seed=[7, 8])
    layers = {}
    for mode in ("onednn", "matmul"):
        layers[mode] = SpectralNormalization(keras.layers.Conv2D(6, 3, padding="same", kernel_initializer="orthogonal"),
                                             filter_gradient=mode)
        layers[mode](x)
    layers["matmul"].set_weights(layers["onednn"].get_weights())

    def gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, training=False)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    assert _custom_gradient_ops(lambda a: layers["matmul"](a, training=False), x) == 1
    assert _custom_gradient_ops(lambda a: layers["onednn"](a, training=False), x) == 0
    for a, b in zip(gradients(layers["matmul"]), gradients(layers["onednn"])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    config = layers["matmul"].get_config()
    assert config["filter_gradient"] == "matmul"
    assert SpectralNormalization.from_config(config).filter_gradient == "matmul"


# (batch, height, width, C_in, C_out) of the high-resolution side, even sizes: the fused resampling forms.
STRIDE2_SHAPES = [(2, 8, 8, 5, 7), (1, 4, 6, 3, 4), (3, 2, 2, 16, 8)]


@pytest.mark.parametrize("shape", STRIDE2_SHAPES)
def test_stride2_matmul_filter_gradients_equal_tensorflows(shape):
    batch, height, width, c_in, c_out = shape
    x = tf.random.stateless_normal([batch, height, width, c_in], seed=[1, 2])
    w = tf.random.stateless_normal([4, 4, c_in, c_out], seed=[3, 4])
    low = tf.random.stateless_normal([batch, height // 2, width // 2, c_out], seed=[5, 6])
    w_up = tf.random.stateless_normal([4, 4, c_in, c_out], seed=[7, 8])  # [4, 4, C_out of the output, C_in]
    shape_up = tf.constant([batch, height, width, c_in])
    cases = [  # (the function with its filter gradient argument, TensorFlow's op, its input)
        (lambda a, b, mode: conv_grad.conv2d_stride2(a, b, mode), lambda a, b: tf.nn.conv2d(a, b, 2, "SAME"), x, w),
        (lambda a, b, mode: conv_grad.conv2d_transpose_stride2(a, b, mode),
         lambda a, b: tf.nn.conv2d_transpose(a, b, shape_up, 2, "SAME"), low, w_up),
    ]
    for function, tensorflow_op, inputs, kernel in cases:
        expected = _gradients(tensorflow_op, inputs, kernel)
        matmul = functools.partial(function, mode="matmul")
        assert _custom_gradient_ops(matmul, inputs, kernel) == 1
        assert _custom_gradient_ops(functools.partial(function, mode="onednn"), inputs, kernel) == 0
        for convolution in (matmul, tf.function(matmul)):
            for a, b in zip(_gradients(convolution, inputs, kernel), expected):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4 * np.abs(b.numpy()).max())
    reference = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[4, 4, c_in, c_out], out_backprop=low,
                                                strides=[1, 2, 2, 1], padding="SAME")
    np.testing.assert_allclose(conv_grad.matmul_filter_gradient_stride2(x, low).numpy(), reference.numpy(),
                               rtol=1e-4, atol=1e-4 * np.abs(reference.numpy()).max())


def test_stride2_rules_read_the_high_resolution_side():
    rules = ({"kernel": "4x4/2", "max_positions": 64, "min_channels": 8},)
    x, w = tf.zeros([1, 8, 8, 8]), tf.zeros([4, 4, 8, 8])
    assert conv_grad.use_matmul_filter_gradient(rules, 8, 8, 8, 9, 4, stride=2) is True
    assert conv_grad.use_matmul_filter_gradient(rules, 8, 8, 8, 9, 3) is False  # a stride-1 kernel: not its rule
    assert conv_grad.use_matmul_filter_gradient(rules, 16, 8, 8, 9, 4, stride=2) is False
    assert conv_grad.use_matmul_filter_gradient(rules, 8, 8, 7, 9, 4, stride=2) is False
    assert conv_grad.use_matmul_filter_gradient(rules, 8, 8, 9, 7, 4, stride=2) is False  # the smaller side counts
    assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d_stride2(a, b, rules), x, w) == 1
    assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d_stride2(a, b, rules), tf.zeros([1, 16, 8, 8]), w) == 0
    # The transposed convolution's positions are its output's: 4x4 -> 8x8 matches, 8x8 -> 16x16 does not.
    for low, expected in ((tf.zeros([1, 4, 4, 8]), 1), (tf.zeros([1, 8, 8, 8]), 0)):
        assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d_transpose_stride2(a, b, rules), low, w) == expected


def test_stride2_forms_fall_back_or_trace_where_their_shapes_say():
    """Odd sizes (and a transposed input of unknown size) keep TensorFlow's gradient; an unknown batch and
    bfloat16 inputs take the products like known ones."""
    w = tf.random.stateless_normal([4, 4, 3, 5], seed=[1, 2])
    odd = tf.random.stateless_normal([2, 7, 6, 3], seed=[3, 4])
    assert _custom_gradient_ops(lambda a, b: conv_grad.conv2d_stride2(a, b, "matmul"), odd, w) == 0
    np.testing.assert_allclose(conv_grad.conv2d_stride2(odd, w, "matmul").numpy(),
                               tf.nn.conv2d(odd, w, 2, "SAME").numpy(), rtol=1e-5, atol=1e-5)
    w_up = tf.transpose(w, [0, 1, 3, 2])  # [4, 4, C_out 5, C_in 3]
    unknown_size = tf.function(lambda a: conv_grad.conv2d_transpose_stride2(a, w_up, "matmul"))
    graph = unknown_size.get_concrete_function(tf.TensorSpec([2, None, None, 3])).graph
    assert sum(op.type == "IdentityN" for op in graph.get_operations()) == 0
    assert unknown_size(tf.zeros([2, 3, 5, 3])).shape == (2, 6, 10, 5)
    for dtype in (tf.float32, tf.bfloat16):
        unknown_batch = tf.TensorSpec([None, 8, 6, 3], dtype)
        graph = tf.function(lambda a: conv_grad.conv2d_stride2(a, tf.cast(w, dtype), "matmul")).get_concrete_function(
            unknown_batch).graph
        assert sum(op.type == "IdentityN" for op in graph.get_operations()) == 1
        up = lambda a: conv_grad.conv2d_transpose_stride2(  # noqa: E731
            a, tf.cast(tf.transpose(w, [0, 1, 3, 2]), dtype), "matmul")
        graph = tf.function(up).get_concrete_function(tf.TensorSpec([None, 4, 3, 3], dtype)).graph
        assert sum(op.type == "IdentityN" for op in graph.get_operations()) == 1
        x = tf.cast(tf.random.stateless_normal([2, 8, 6, 3], seed=[5, 6]), dtype)
        kernel = tf.cast(w, dtype)
        dy = tf.cast(tf.random.stateless_normal([2, 4, 3, 5], seed=[7, 8]), dtype)
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = conv_grad.conv2d_stride2(x, kernel, "matmul")
        dx, dw = tape.gradient(y, [x, kernel], output_gradients=dy)
        assert dx.dtype == dw.dtype == dtype
        reference = tf.raw_ops.Conv2DBackpropFilter(input=tf.cast(x, tf.float32), filter_sizes=[4, 4, 3, 5],
                                                    out_backprop=tf.cast(dy, tf.float32), strides=[1, 2, 2, 1],
                                                    padding="SAME")
        np.testing.assert_allclose(tf.cast(dw, tf.float32).numpy(), reference.numpy(), rtol=0.05,
                                   atol=0.02 * np.abs(reference.numpy()).max())
