"""The blocks' resampling convolutions in fused form (sagan_tf.layers.resampling) equal the plain compositions:
upsample then convolve, convolve then pool; outputs and both gradients, layer by layer and block by block
(`fused_resampling=True` against `False`, the same weights)."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import resampling
from sagan_tf.layers.blocks import DiscriminatorBlock, GeneratorBlock


def _with_gradients(function, x, w):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = function(x, w)
        loss = tf.reduce_sum(y * tf.cos(y))  # a gradient that differs from position to position
    return (y, *tape.gradient(loss, [x, w]))


def _assert_close(got, expected, scale=0.0):
    """Equal up to float rounding: relative to each array's largest entry, or to `scale` if larger (a
    gradient that is zero but for rounding, such as a bias's before a batch norm, has no scale of its own)."""
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        atol = 1e-5 * max(np.abs(b.numpy()).max(), scale)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=atol)


# (batch, height, width, C_in, C_out, kernel size): square and not, odd sizes (pooling drops the last row).
SHAPES = [(2, 4, 4, 3, 5, 3), (1, 5, 7, 4, 2, 3), (2, 6, 3, 2, 3, 1), (1, 7, 5, 3, 4, 1)]


@pytest.mark.parametrize("filter_gradient", ["onednn", "matmul"])  # matmul: conv_grad's products, even sizes
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name, composition", [
    ("upsample_conv2d", lambda x, w: tf.nn.conv2d(resampling.upsample_nearest(x), w, 1, "SAME")),
    ("conv2d_downsample", lambda x, w: resampling.downsample_average(tf.nn.conv2d(x, w, 1, "SAME"))),
])
def test_fused_forms_equal_the_compositions(shape, name, composition, filter_gradient):
    batch, height, width, c_in, c_out, k = shape
    x = tf.random.stateless_normal([batch, height, width, c_in], seed=[1, 2])
    w = tf.random.stateless_normal([k, k, c_in, c_out], seed=[3, 4])
    expected = _with_gradients(composition, x, w)
    fused = functools.partial(getattr(resampling, name), filter_gradient=filter_gradient)
    for function in (fused, tf.function(fused)):
        _assert_close(_with_gradients(function, x, w), expected)


def test_fused_forms_do_fewer_products():
    """The point of the fused forms: the traced convolutions do 16/36 of the composition's products."""
    x = tf.TensorSpec([2, 8, 8, 16])
    w = tf.random.stateless_normal([3, 3, 16, 16], seed=[3, 4])

    def products(function):
        return _products(tf.function(lambda a: function(a, w)).get_concrete_function(x).graph)

    for name in ("upsample_conv2d", "conv2d_downsample"):
        fused = products(getattr(resampling, name))
        composed = products(functools.partial(getattr(resampling, name), fused=False))
        assert fused * 36 == composed * 16, name


def test_upsampling_is_fused_only_where_the_kernel_does_not_outweigh_the_input():
    """Few positions and many output channels: the plain composition (no transposed convolution), with the same
    result; more positions, the same kernel: fused. An unknown batch counts as 1."""
    w = tf.random.stateless_normal([3, 3, 4, 40], seed=[3, 4])  # 9 x 40 = 360
    for shape, fused in (((2, 4, 4, 4), False), ((6, 4, 4, 4), True), ((1, 10, 10, 4), True)):  # 4 x 32, 96, 100
        assert resampling.fuses_upsampling(shape, 40) is fused
        graph = tf.function(lambda a: resampling.upsample_conv2d(a, w)).get_concrete_function(
            tf.TensorSpec(shape)).graph
        assert any(op.type == "Conv2DBackpropInput" for op in graph.get_operations()) is fused
        x = tf.random.stateless_normal(shape, seed=[1, 2])
        _assert_close(_with_gradients(resampling.upsample_conv2d, x, w), _with_gradients(
            lambda a, b: tf.nn.conv2d(resampling.upsample_nearest(a), b, 1, "SAME"), x, w))
    assert not resampling.fuses_upsampling((None, 8, 8, 4), 40) and resampling.fuses_upsampling((None, 10, 10, 4), 40)


@pytest.mark.parametrize("make_block, input_shape", [
    (lambda **kw: GeneratorBlock(6, num_classes=3, upsample=True, **kw), (2, 4, 4, 5)),
    (lambda **kw: DiscriminatorBlock(6, downsample=True, **kw), (2, 8, 8, 5)),
    (lambda **kw: DiscriminatorBlock(6, optimized=True, **kw), (2, 8, 8, 3)),
    (lambda **kw: DiscriminatorBlock(5, downsample=True, use_spectral_norm=False, **kw), (2, 7, 7, 5)),
])
def test_blocks_equal_their_plain_form(make_block, input_shape):
    """Same weights, same outputs and weight gradients with the fused forms and with the plain compositions,
    spectrally normalised or not; training calls (batch statistics, power iteration) included."""
    fused_block, plain_block = make_block(), make_block(fused_resampling=False)
    x = tf.random.stateless_normal(input_shape, seed=[5, 6])
    args = (tf.constant([0, 2]),) if isinstance(fused_block, GeneratorBlock) else ()
    fused_block(x, *args)
    plain_block(x, *args)
    plain_block.set_weights(fused_block.get_weights())  # the same weights, power-iteration start and statistics

    def run(block):
        with tf.GradientTape() as tape:
            y = block(x, *args, training=True)
            loss = tf.reduce_sum(y * tf.cos(y))
        return [y, *map(tf.convert_to_tensor, tape.gradient(loss, block.trainable_weights))]

    fused = run(fused_block)
    plain = run(plain_block)
    _assert_close(plain, fused, scale=max(np.abs(g.numpy()).max() for g in fused[1:]))
    # The two are really different computations: the fused block's traced step has fewer products.
    assert _conv_products(fused_block, x, args) < _conv_products(plain_block, x, args)


def _conv_products(block, x, args):
    graph = tf.function(lambda a: block(a, *args, training=False)).get_concrete_function(
        tf.TensorSpec(x.shape)).graph
    return _products(graph)


def _products(graph):
    """The multiply-adds of a graph's convolutions: per output pixel of a Conv2D, k * k * C_in; per input
    pixel of a transposed convolution (Conv2DBackpropInput, whose filter is [k, k, C_out, C_in]), k * k * C_out."""
    total = 0
    for op in graph.get_operations():
        if op.type == "Conv2D":
            total += op.outputs[0].shape.num_elements() * int(np.prod(op.inputs[1].shape[:3]))
        elif op.type == "Conv2DBackpropInput":
            total += op.inputs[2].shape.num_elements() * int(np.prod(op.inputs[1].shape[:3]))
    return total
