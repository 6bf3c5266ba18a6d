"""Tests of sagan_tf.layers.SelfAttention against an independent numpy implementation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from sagan_tf.layers import SelfAttention, attention_style_kwargs
from sagan_tf.layers.attention import blocked_attention


def _weights(conv):
    """[C_in, C_out] matrix of a (possibly spectrally normalised) 1x1 convolution."""
    if hasattr(conv, "normalized_kernel"):
        w = conv.normalized_kernel(training=False).numpy()
    else:
        w = conv.kernel.numpy()
    return w.reshape(w.shape[-2], w.shape[-1]).astype(np.float64)


def _max_pool(x, size):
    """x [H, W, C] -> [H/size, W/size, C]."""
    h, w, c = x.shape
    return x.reshape(h // size, size, w // size, size, c).max(axis=(1, 3))


def numpy_self_attention(layer, x):
    """Equations (1)-(3) of the paper, written out per image with explicit sums over positions."""
    wf, wg, wh = _weights(layer.key_conv), _weights(layer.query_conv), _weights(layer.value_conv)
    gamma = float(layer.gamma.numpy())
    outputs, maps = [], []
    for image in np.asarray(x, np.float64):
        h, w, c = image.shape
        f = image @ wf  # keys, [H, W, Ck]
        g = image @ wg  # queries
        hx = image @ wh  # values
        if layer.pool_size > 1:
            f, hx = _max_pool(f, layer.pool_size), _max_pool(hx, layer.pool_size)
        f, g, hx = f.reshape(-1, f.shape[-1]), g.reshape(h * w, -1), hx.reshape(-1, hx.shape[-1])
        n_query, n_key = g.shape[0], f.shape[0]
        s = np.array([[f[i] @ g[j] for j in range(n_query)] for i in range(n_key)])  # s_ij
        beta = np.exp(s - s.max(axis=0, keepdims=True))
        beta = (beta / beta.sum(axis=0, keepdims=True)).T  # beta[j, i], softmax over i
        o = np.stack([sum(beta[j, i] * hx[i] for i in range(n_key)) for j in range(n_query)])
        if layer.output_conv is not None:
            o = o @ _weights(layer.output_conv)
        outputs.append(gamma * o.reshape(h, w, c) + image)
        maps.append(beta)
    return np.stack(outputs), np.stack(maps)


class SelfAttentionTest(parameterized.TestCase, tf.test.TestCase):
    def _layer(self, style="paper", gamma=0.7, **kwargs):
        layer = SelfAttention(**attention_style_kwargs(style), **kwargs)
        layer.build((2, 8, 8, 16))
        if gamma is not None:
            layer.gamma.assign(gamma)
        return layer

    @parameterized.parameters("paper", "official")
    def test_matches_numpy_equations(self, style):
        for use_sn in (False, True):
            layer = self._layer(style, use_spectral_norm=use_sn)
            x = np.random.RandomState(0).randn(2, 8, 8, 16).astype(np.float32)
            y, attention = layer(x, return_attention=True)
            expected_y, expected_map = numpy_self_attention(layer, x)
            self.assertAllClose(attention, expected_map, rtol=1e-4, atol=1e-6)
            self.assertAllClose(y, expected_y, rtol=1e-4, atol=1e-4)

    def test_shapes_and_channel_defaults(self):
        layer = self._layer("official")
        x = tf.random.normal((2, 8, 8, 16))
        y, attention = layer(x, return_attention=True)
        self.assertEqual(y.shape, (2, 8, 8, 16))
        self.assertEqual(attention.shape, (2, 64, 16))  # keys max-pooled 2x2
        self.assertEqual(layer.query_conv.layer.filters, 2)  # C / 8
        self.assertEqual(layer.value_conv.layer.filters, 8)  # C / 2

    def test_gamma_initialised_to_zero_gives_identity(self):
        layer = self._layer("official", gamma=None)
        self.assertEqual(float(layer.gamma.numpy()), 0.0)
        x = tf.random.normal((2, 8, 8, 16))
        self.assertAllEqual(layer(x, training=True), x)

    def test_attention_rows_sum_to_one(self):
        layer = self._layer("paper")
        _, attention = layer(tf.random.normal((2, 8, 8, 16)) * 5.0, return_attention=True)
        self.assertAllClose(tf.reduce_sum(attention, axis=-1), np.ones((2, 64)), atol=1e-5)
        self.assertAllGreaterEqual(attention, 0.0)

    @parameterized.parameters(("paper", 7), ("official", 16), ("official", 64))
    def test_blocked_path_equals_full_path(self, style, block):
        full = self._layer(style)
        blocked = SelfAttention(**attention_style_kwargs(style), query_block_size=block)
        blocked.build((2, 8, 8, 16))
        blocked.set_weights(full.get_weights())
        x = tf.random.normal((2, 8, 8, 16))
        y_full, map_full = full(x, return_attention=True)
        y_blocked, map_blocked = blocked(x, return_attention=True)
        self.assertAllClose(y_blocked, y_full, rtol=1e-5, atol=1e-5)
        self.assertAllClose(map_blocked, map_full, rtol=1e-5, atol=1e-6)

        def loss_and_grads(layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
            return tape.gradient(loss, [x] + [w.value for w in layer.trainable_weights])

        for g_full, g_blocked in zip(loss_and_grads(full), loss_and_grads(blocked)):
            self.assertAllClose(g_blocked, g_full, rtol=1e-4, atol=1e-5)

    def test_blocked_path_traces_with_an_unknown_batch_size(self):
        """An exported signature leaves the batch size unknown; the query count stays static (the blocked path
        needs it) and the result equals the full path's."""
        full = self._layer("official")
        blocked = SelfAttention(**attention_style_kwargs("official"), query_block_size=16)
        blocked.build((2, 8, 8, 16))
        blocked.set_weights(full.get_weights())
        traced = tf.function(lambda x: blocked(x), input_signature=[tf.TensorSpec((None, 8, 8, 16))])
        x = tf.random.normal((3, 8, 8, 16))
        self.assertAllClose(traced(x), full(x), rtol=1e-5, atol=1e-5)

    def test_blocked_function_in_graph_mode_and_bfloat16(self):
        """blocked_attention's own backward equals autodiff of the plain formula, traced and in bfloat16."""
        rng = np.random.RandomState(1)
        q, k, v = (tf.constant(rng.randn(2, n, c).astype(np.float32)) for n, c in ((37, 4), (20, 4), (20, 6)))
        weights = tf.constant(rng.randn(2, 37, 6).astype(np.float32))

        def loss_and_grads(fn, dtype):
            with tf.GradientTape() as tape:
                inputs = [tf.cast(t, dtype) for t in (q, k, v)]
                tape.watch(inputs)
                loss = tf.reduce_sum(tf.cast(fn(*inputs), tf.float32) * weights)
            return [loss, *tape.gradient(loss, inputs)]

        plain = lambda q, k, v: tf.matmul(  # noqa: E731
            tf.cast(tf.nn.softmax(tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32)), v.dtype), v)
        for dtype, tol in ((tf.float32, 1e-5), (tf.bfloat16, 0.05)):
            expected = loss_and_grads(plain, tf.float32)
            got = tf.function(lambda: loss_and_grads(lambda *a: blocked_attention(*a, block_size=8), dtype))()
            for a, b in zip(got, expected):
                self.assertEqual(a.dtype, dtype if a.shape.rank else tf.float32)
                self.assertAllClose(tf.cast(a, tf.float32), b, rtol=tol, atol=tol * np.abs(b.numpy()).max())

    def test_blocked_float16_stays_finite_with_large_values_and_even_weights(self):
        """Near-even weights over many keys and values near float16's range: the blocked path's product of
        normalised weights stays within the values' range (unnormalised weights would overflow to inf)."""
        q = tf.zeros((1, 16, 4), tf.float16)  # equal scores: every weight 1 / 1024
        k = tf.zeros((1, 1024, 4), tf.float16)
        v = tf.fill((1, 1024, 2), tf.constant(1000.0, tf.float16))
        out = blocked_attention(q, k, v, block_size=8)
        self.assertEqual(out.dtype, tf.float16)
        self.assertAllClose(tf.cast(out, tf.float32), tf.fill((1, 16, 2), 1000.0), rtol=1e-2)

    def test_softmax_in_float32_under_mixed_precision(self):
        layer = SelfAttention(**attention_style_kwargs("official"), dtype="mixed_float16")
        x = tf.random.normal((1, 8, 8, 16), dtype=tf.float16)
        y, attention = layer(x, return_attention=True)
        self.assertEqual(y.dtype, tf.float16)
        self.assertEqual(attention.dtype, tf.float32)

    def test_config_round_trip_and_saving(self):
        layer = self._layer("official", query_block_size=8)
        clone = SelfAttention.from_config(layer.get_config())
        self.assertEqual(clone.get_config(), layer.get_config())
        restored = keras.layers.deserialize(keras.layers.serialize(layer))
        self.assertEqual(restored.pool_size, 2)
        self.assertEqual(restored.query_block_size, 8)

    def test_invalid_arguments(self):
        with pytest.raises(ValueError, match="value_ratio=2"):
            SelfAttention(value_ratio=2, output_projection=False)
        with pytest.raises(ValueError, match="query_block_size=0"):
            SelfAttention(query_block_size=0)
        with pytest.raises(ValueError, match="attention_style='bogus'"):
            attention_style_kwargs("bogus")
        with pytest.raises(ValueError, match="not divisible"):
            SelfAttention(pool_size=2).build((1, 5, 5, 16))
