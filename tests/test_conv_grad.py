"""The convolution whose filter gradient may be taken with matrix products (sagan_tf.layers.conv_grad): its
gradients equal TensorFlow's, the "auto" rule picks what the benchmark measured, and SAGAN's layers use it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import machine
from sagan_tf.layers import conv_grad
from sagan_tf.layers.spectral_norm import SpectralNormalization


@pytest.fixture
def mode():
    yield conv_grad.set_filter_gradient
    conv_grad.set_filter_gradient("auto")


def _gradients(convolution, x, w):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = convolution(x, w)
        loss = tf.reduce_sum(y * tf.cos(y))  # a gradient that is not the same at every position
    return (y, *tape.gradient(loss, [x, w]))


# Narrow shapes take the exact copies; from conv_grad.FLAT_MIN_WIDTH on, the row ranges of one padded copy
# (channels that are and are not a multiple of 16, which decides whether TensorFlow's slices are views).
WIDE = conv_grad.FLAT_MIN_WIDTH


@pytest.mark.parametrize("shape", [(2, 8, 8, 5, 7, 3), (3, 6, 10, 4, 6, 1), (1, 9, 9, 3, 2, 5),
                                   (2, 5, WIDE, 16, 8, 3), (3, 4, WIDE + 1, 3, 5, 3), (1, 6, WIDE + 4, 16, 4, 5)])
def test_matmul_filter_gradient_equals_tensorflows(mode, shape):
    batch, height, width, c_in, c_out, k = shape
    x = tf.random.stateless_normal([batch, height, width, c_in], seed=[1, 2])
    w = tf.random.stateless_normal([k, k, c_in, c_out], seed=[3, 4])
    expected = _gradients(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"), x, w)
    mode("matmul")
    for convolution in (conv_grad.conv2d, tf.function(conv_grad.conv2d)):
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


def test_auto_rule_follows_the_kernel_level_and_modes_force_it(mode):
    rule = conv_grad.use_matmul_filter_gradient
    # AVX2 kernels: the large 3x3 convolutions of the 64- and 128-pixel configs, 1x1 from 64x64.
    assert rule(128, 128, 64, 64, 3, avx2=True) and rule(32, 32, 256, 256, 3, avx2=True)
    assert rule(64, 64, 128, 16, 1, avx2=True) and not rule(32, 32, 64, 8, 1, avx2=True)
    assert not rule(16, 16, 64, 64, 3, avx2=True) and not rule(32, 32, 64, 64, 3, avx2=True)
    assert rule(8, 8, 1024, 1024, 3, avx2=True) and not rule(8, 8, 256, 256, 3, avx2=True)
    # AVX-512 kernels: oneDNN's own filter gradient for the large 3x3 ones.
    assert not rule(128, 128, 64, 64, 3, avx2=False) and rule(32, 32, 64, 8, 1, avx2=False)
    assert rule(4, 4, 1024, 1024, 3, avx2=False)
    mode("matmul")
    assert rule(4, 4, 3, 3, 3, avx2=False) and "forced" in conv_grad.describe()
    mode("onednn")
    assert not rule(128, 128, 64, 64, 3, avx2=True)
    with pytest.raises(ValueError, match="filter gradient must be one of"):
        conv_grad.set_filter_gradient("fast")


def test_spectrally_normalised_conv_uses_it_with_the_same_gradients(mode):
    layer = SpectralNormalization(keras.layers.Conv2D(6, 3, padding="same", kernel_initializer="orthogonal"))
    x = tf.random.stateless_normal([2, 8, 8, 4], seed=[7, 8])
    layer(x)

    def gradients():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, training=False)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    mode("onednn")
    expected = gradients()
    mode("matmul")
    graph = tf.function(lambda: layer(x, training=False)).get_concrete_function().graph
    assert "IdentityN" in {op.type for op in graph.get_operations()}  # tf.custom_gradient's marker: the wrapper ran
    for a, b in zip(gradients(), expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_auto_leaves_eigens_kernels_alone_when_onednn_is_off():
    """The rules were measured against oneDNN's kernels: with oneDNN off (TensorFlow's default on CPUs without
    AVX-512, outside the train command) "auto" keeps TensorFlow's gradient for every shape."""
    import os
    import subprocess
    import sys

    code = ("from sagan_tf.layers import conv_grad as c; "
            "print(c.use_matmul_filter_gradient(128, 128, 64, 64, 3), c.describe())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False TensorFlow's kernels (auto: oneDNN off)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert result.stdout.strip().splitlines()[-1].startswith("True auto: matrix products"), result.stderr[-2000:]
