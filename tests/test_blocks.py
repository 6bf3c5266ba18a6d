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

    def test_upsample_nearest_gradient_and_shapes(self):
        x = tf.random.normal((2, 3, 5, 4))
        upstream = tf.random.normal((2, 6, 10, 4))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(upsample_nearest(x) * upstream)
        blocks = tf.reshape(upstream, (2, 3, 2, 5, 2, 4))
        self.assertAllClose(tape.gradient(y, x), tf.reduce_sum(blocks, axis=(2, 4)))  # each pixel's 2x2 block
        # In a low precision each pixel's gradient is its four upstream values summed in that precision: three
        # roundings, each within the unit roundoff u of a partial sum, so within 3u of the sum of the values'
        # magnitudes (Higham's bound for recursive summation, first order), whichever order the kernel adds in
        # or whether it accumulates wider (CPUs with and without native bfloat16 differ there). The float64 sum
        # below is exact for bfloat16 and float16 terms; for float64 terms it is rounded too, so twice the bound.
        for dtype, unit_roundoff, sums in ((tf.bfloat16, 2 ** -8, 1), (tf.float16, 2 ** -11, 1),
                                           (tf.float64, 2 ** -53, 2)):
            low = tf.cast(upstream, dtype)
            gradient = tf.function(lambda a, g: tf.gradients(upsample_nearest(a), a, g)[0]).get_concrete_function(
                tf.TensorSpec([None, None, None, 4], dtype), tf.TensorSpec([None, None, None, 4], dtype))
            terms = tf.reshape(tf.cast(low, tf.float64), (2, 3, 2, 5, 2, 4))
            expected = tf.reduce_sum(terms, axis=(2, 4))
            bound = sums * 3 * unit_roundoff * (1 + 4 * unit_roundoff) * tf.reduce_sum(tf.abs(terms), axis=(2, 4))
            error = tf.abs(tf.cast(gradient(tf.cast(x, dtype), low), tf.float64) - expected)
            self.assertAllLessEqual(error - bound, 0.0)
        tiny = tf.constant([2 ** -24, 0, 0, 0], tf.float16, (1, 2, 2, 1))  # float16's smallest subnormal, once
        with tf.GradientTape() as tape:
            ones = tf.ones((1, 1, 1, 1), tf.float16)
            tape.watch(ones)
            y = upsample_nearest(ones)
        self.assertEqual(float(tape.gradient(y, ones, output_gradients=tiny)[0, 0, 0, 0]), 2 ** -24)
        for dtype in (tf.bfloat16, tf.float16, tf.float64, tf.int32):
            self.assertAllEqual(upsample_nearest(tf.cast(x, dtype)), tf.repeat(tf.repeat(tf.cast(x, dtype), 2, 1), 2, 2))
        # An unknown batch stays unknown, known sizes stay known (the fused convolutions read them when traced).
        traced = tf.function(upsample_nearest).get_concrete_function(tf.TensorSpec([None, 3, 5, 4]))
        self.assertEqual(traced.output_shapes.as_list(), [None, 6, 10, 4])
        self.assertAllEqual(traced(x), tf.repeat(tf.repeat(x, 2, 1), 2, 2))
        unknown = tf.function(upsample_nearest).get_concrete_function(tf.TensorSpec([None, None, None, 4]))
        self.assertAllEqual(unknown(x), tf.repeat(tf.repeat(x, 2, 1), 2, 2))

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


def _traced(block, x, *args):
    """(convolutions with the matrix-product filter gradient, Conv2D ops, transposed convolutions, AvgPool ops)
    of a fresh trace of the block's training call. tf.custom_gradient marks the first with an IdentityN op
    (batch norm and the nearest-neighbour upsampling have their own)."""
    graph = tf.function(lambda a: block(a, *args, training=True)).get_concrete_function(tf.TensorSpec(x.shape)).graph
    ops = graph.get_operations()
    return (sum(op.type == "IdentityN" and "batch_norm" not in op.name and "upsample_nearest" not in op.name
                for op in ops),
            *(sum(op.type == kind for op in ops) for kind in ("Conv2D", "Conv2DBackpropInput", "AvgPool")))


RULES = [{"kernel": "1x1", "min_positions": 16}, {"kernel": "kxk", "max_positions": 64, "min_channels": 4}]


@pytest.mark.parametrize("make_block, input_shape, fused, plain", [
    # upsampling: the first 3x3 conv as one transposed convolution, the 1x1 shortcut at the low resolution;
    # downsampling: 3x3 conv and pool as one stride-2 conv, the 1x1 shortcut after pooling (not fused: 2 pools);
    # with "matmul", every convolution of the fused block takes the matrix products, the stride-2 ones too.
    (lambda **kw: GeneratorBlock(4, num_classes=0, **kw), (2, 4, 4, 4), (3, 2, 1, 0), (0, 3, 0, 0)),
    (lambda **kw: DiscriminatorBlock(4, **kw), (2, 8, 8, 4), (3, 3, 0, 1), (0, 3, 0, 2)),
])
def test_a_block_keeps_its_settings_whatever_is_built_after_it(make_block, input_shape, fused, plain):
    """Settings are constructor arguments: a block traced after blocks with other settings were built and
    traced computes as it was told (no process-wide switch)."""
    x = tf.zeros(input_shape)
    first = make_block(fused_resampling=True, filter_gradient="matmul")
    first(x)
    second = make_block(fused_resampling=False, filter_gradient="onednn")
    second(x)
    assert _traced(second, x) == plain
    assert _traced(first, x) == fused
    third = make_block(fused_resampling=True, filter_gradient="onednn")
    third(x)
    assert _traced(first, x) == fused and _traced(second, x) == plain
    assert _traced(third, x) == (0, *fused[1:])
    assert (first.fused_resampling, first.filter_gradient) == (True, "matmul")


@pytest.mark.parametrize("block", [
    GeneratorBlock(8, num_classes=3, fused_resampling=False, filter_gradient="matmul"),
    DiscriminatorBlock(6, fused_resampling=False, filter_gradient=RULES),
])
def test_settings_round_trip_through_the_config(block):
    config = keras.layers.serialize(block)
    assert config["config"]["fused_resampling"] is False
    restored = keras.layers.deserialize(config)
    assert restored.fused_resampling is False and restored.filter_gradient == block.filter_gradient
    assert restored.get_config() == block.get_config()
    restored(tf.zeros((1, 8, 8, 3)), *([tf.constant([1])] if isinstance(block, GeneratorBlock) else []))
    for conv in (restored.conv1, restored.conv2, restored.shortcut):
        assert conv.filter_gradient == block.filter_gradient  # passed on to the spectrally normalised convs


@pytest.mark.parametrize("cls", [GeneratorBlock, DiscriminatorBlock])
def test_a_config_without_the_settings_restores_with_the_defaults(cls):
    """Runs stored before the settings were arguments: fused resampling, TensorFlow's filter gradients."""
    config = keras.layers.serialize(cls(4, fused_resampling=False, filter_gradient="matmul"))
    del config["config"]["fused_resampling"], config["config"]["filter_gradient"]
    restored = keras.layers.deserialize(config)
    assert (restored.fused_resampling, restored.filter_gradient) == (True, "onednn")


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="fused_resampling='yes'"):
        GeneratorBlock(4, fused_resampling="yes")
    with pytest.raises(ValueError, match="filter_gradient='auto'"):
        DiscriminatorBlock(4, filter_gradient="auto")


# A numpy reference of the residual formulas, layer by layer from the blocks' own weights (no spectral norm:
# the kernels are used as stored), so that a wrong residual fails with fused and plain resampling alike.

def _np_conv(x, layer):
    """'same' stride-1 convolution [B, H, W, C] -> [B, H, W, O] by summing the shifted taps, plus the bias."""
    kernel, bias = layer.kernel.numpy().astype(np.float64), layer.bias.numpy().astype(np.float64)
    k, (_, height, width, _) = kernel.shape[0], x.shape
    padded = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    out = sum(np.einsum("bhwc,co->bhwo", padded[:, i:i + height, j:j + width], kernel[i, j])
              for i in range(k) for j in range(k))
    return out + bias


def _np_cbn(x, layer, labels):
    """Training-mode conditional batch norm: batch statistics (biased variance), per-class gain and bias."""
    gain, bias = layer.gain.numpy().astype(np.float64), layer.bias.numpy().astype(np.float64)
    rows = labels if layer.num_classes else np.zeros(len(x), int)
    normalized = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + layer.epsilon)
    return normalized * gain[rows][:, None, None, :] + bias[rows][:, None, None, :]


def _np_up(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def _np_pool(x):
    b, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _np_relu(x):
    return np.maximum(x, 0.0)


def numpy_generator_block(block, x, labels):
    """relu(cBN), upsample, conv3x3, relu(cBN), conv3x3, plus the shortcut: (upsample,) conv1x1 or the identity."""
    resample = _np_up if block.upsample else (lambda a: a)
    h = _np_conv(resample(_np_relu(_np_cbn(x, block.bn1, labels))), block.conv1)
    h = _np_conv(_np_relu(_np_cbn(h, block.bn2, labels)), block.conv2)
    return h + (x if block.shortcut is None else _np_conv(resample(x), block.shortcut))


def numpy_discriminator_block(block, x):
    """Standard: relu, conv3x3, relu, conv3x3, (pool); shortcut conv1x1 then (pool), or the identity.
    Optimised: conv3x3, relu, conv3x3, pool; shortcut pool then conv1x1."""
    resample = _np_pool if block.downsample else (lambda a: a)
    h = _np_conv(x if block.optimized else _np_relu(x), block.conv1)
    h = resample(_np_conv(_np_relu(h), block.conv2))
    if block.optimized:
        return h + _np_conv(_np_pool(x), block.shortcut)
    return h + (x if block.shortcut is None else resample(_np_conv(x, block.shortcut)))


def _randomize(block, seed):
    """Every kernel, bias, gain and class bias drawn at random (biases are zeros and gains ones at the start)."""
    rng = np.random.RandomState(seed)
    for weight in block.weights:
        if "moving" not in weight.path:
            weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32) + ("gain" in weight.path))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("upsample, c_in, c_out, num_classes", [
    (True, 5, 4, 3), (False, 4, 4, 3), (False, 3, 4, 0)])
def test_generator_block_equals_the_numpy_residual_formula(fused, upsample, c_in, c_out, num_classes):
    block = GeneratorBlock(c_out, num_classes=num_classes, upsample=upsample, use_spectral_norm=False,
                           fused_resampling=fused)
    x = np.random.RandomState(1).randn(3, 4, 5, c_in).astype(np.float32)
    labels = np.array([0, 2, 1]) % max(num_classes, 1)
    block(x, labels)
    _randomize(block, 2)
    got = block(x, labels, training=True).numpy()
    expected = numpy_generator_block(block, x.astype(np.float64), labels)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("downsample, optimized, c_in, c_out", [
    (True, False, 4, 6), (True, True, 3, 6), (False, False, 5, 5), (False, False, 3, 5), (True, False, 5, 5)])
def test_discriminator_block_equals_the_numpy_residual_formula(fused, downsample, optimized, c_in, c_out):
    block = DiscriminatorBlock(c_out, downsample=downsample, optimized=optimized, use_spectral_norm=False,
                               fused_resampling=fused)
    x = np.random.RandomState(3).randn(2, 6, 7, c_in).astype(np.float32)  # an odd width: pooling drops a column
    block(x)
    _randomize(block, 4)
    got = block(x, training=True).numpy()
    expected = numpy_discriminator_block(block, x.astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
