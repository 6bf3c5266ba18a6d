"""Tests of sagan_tf.layers.SpectralNormalization against numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import strategies
from absl.testing import parameterized

from sagan_tf.layers import SpectralNormalization


def _kernel_matrix(layer):
    """The wrapped weight as the [fan_in, out] matrix whose top singular value is sigma."""
    w = np.asarray(layer.kernel.numpy(), np.float64)
    if isinstance(layer.layer, keras.layers.Conv2DTranspose):
        w = np.swapaxes(w, -1, -2)
    return w.reshape(-1, w.shape[-1])


def _normalized_sigma(layer):
    w_sn = np.asarray(layer.normalized_kernel(training=False).numpy(), np.float64)
    if isinstance(layer.layer, keras.layers.Conv2DTranspose):
        w_sn = np.swapaxes(w_sn, -1, -2)
    return np.linalg.svd(w_sn.reshape(-1, w_sn.shape[-1]), compute_uv=False)[0]


CASES = {
    "dense": (lambda: keras.layers.Dense(12), (4, 20)),
    "conv2d": (lambda: keras.layers.Conv2D(8, 3, padding="same"), (2, 6, 6, 5)),
    "conv2d_transpose": (lambda: keras.layers.Conv2DTranspose(6, 3, strides=2), (2, 5, 5, 4)),
    "embedding": (lambda: keras.layers.Embedding(10, 16), None),
}


def _inputs(name, shape):
    if name == "embedding":
        return tf.constant([[1, 4, 7], [0, 9, 2]])
    return tf.random.normal(shape, seed=3)


class SpectralNormalizationTest(parameterized.TestCase, tf.test.TestCase):
    @parameterized.named_parameters(*[(name,) + (name,) for name in CASES])
    def test_sigma_of_normalized_kernel_is_one_after_30_training_calls(self, name):
        make, shape = CASES[name]
        layer = SpectralNormalization(make())
        x = _inputs(name, shape)
        for _ in range(30):
            layer(x, training=True)
        self.assertAllClose(_normalized_sigma(layer), 1.0, atol=0.02)
        # The raw kernel itself is not normalised (unlike keras.layers.SpectralNormalization).
        raw_sigma = np.linalg.svd(_kernel_matrix(layer), compute_uv=False)[0]
        self.assertGreater(abs(raw_sigma - 1.0), 0.05)
        self.assertAllClose(layer.sigma.numpy(), raw_sigma, rtol=0.02)

    @parameterized.named_parameters(*[(name,) + (name,) for name in CASES])
    def test_output_uses_normalized_kernel_and_has_layer_shape(self, name):
        make, shape = CASES[name]
        plain = make()
        layer = SpectralNormalization(plain)
        x = _inputs(name, shape)
        y = layer(x, training=False)
        self.assertEqual(tuple(y.shape), tuple(plain.compute_output_shape(x.shape)))
        # The same layer computed with its raw kernel, then rescaled by the layer's sigma.
        sigma = layer.kernel.numpy().ravel()[0] / layer.normalized_kernel().numpy().ravel()[0]
        bias = plain.bias.numpy() if getattr(plain, "bias", None) is not None else 0.0
        expected = (plain(x).numpy() - bias) / sigma + bias
        self.assertAllClose(y, expected, rtol=1e-4, atol=1e-5)
        self.assertGreater(abs(sigma - 1.0), 0.05)

    def test_inference_calls_leave_u_unchanged_and_training_calls_update_it(self):
        layer = SpectralNormalization(keras.layers.Dense(5))
        x = tf.random.normal((3, 7))
        layer(x, training=False)
        u0 = layer.u.numpy().copy()
        for _ in range(3):
            layer(x, training=False)
            layer(x)
        self.assertAllEqual(layer.u.numpy(), u0)
        layer(x, training=True)
        self.assertNotAllClose(layer.u.numpy(), u0)

    @parameterized.named_parameters(*[(name,) + (name,) for name in CASES])
    def test_inference_takes_the_direction_of_u_not_its_length(self, name):
        """An EMA generator's u is an average of unit vectors, shorter than 1 where u turned during training:
        inference must normalise it (with sigma from the short u, W / sigma is too large by 1 / |u|)."""
        make, shape = CASES[name]
        layer = SpectralNormalization(make())
        x = _inputs(name, shape)
        for _ in range(5):
            layer(x, training=True)
        y = layer(x, training=False).numpy()
        layer.u.assign(0.4 * layer.u.numpy())
        self.assertAllClose(layer(x, training=False), y, rtol=1e-5, atol=1e-6)
        self.assertNotAllClose(layer(x, training=False), 0.4 * y)

    def test_gradient_flows_through_sigma_like_finite_differences(self):
        layer = SpectralNormalization(keras.layers.Dense(3, use_bias=False))
        x = np.random.RandomState(0).randn(4, 5)
        r = np.random.RandomState(1).randn(4, 3)
        layer.build((4, 5))
        u_before = layer.u.numpy().astype(np.float64)
        with tf.GradientTape() as tape:
            y = layer(tf.constant(x, tf.float32), training=True)
            loss = tf.reduce_sum(y * tf.constant(r, tf.float32))
        grad = tape.gradient(loss, layer.kernel.value).numpy()

        w0 = layer.kernel.numpy().astype(np.float64)
        # One power iteration from the frozen u, exactly as the layer did; u, v then held fixed.
        v = u_before @ w0.T
        v /= np.linalg.norm(v)
        u = v @ w0
        u /= np.linalg.norm(u)

        def loss_fn(w):
            sigma = (v @ w @ u.T).item()
            return np.sum((x @ (w / sigma)) * r)

        fd = np.zeros_like(w0)
        eps = 1e-5
        for idx in np.ndindex(*w0.shape):
            wp, wm = w0.copy(), w0.copy()
            wp[idx] += eps
            wm[idx] -= eps
            fd[idx] = (loss_fn(wp) - loss_fn(wm)) / (2 * eps)
        self.assertAllClose(grad, fd, rtol=1e-3, atol=1e-4)
        # With sigma treated as a constant (Keras' built-in behaviour) the gradient differs.
        sigma0 = (v @ w0 @ u.T).item()
        self.assertNotAllClose(grad, x.T @ r / sigma0, atol=1e-3)

    def test_u_stays_identical_across_mirrored_replicas(self):
        strategy = strategies.mirrored()
        with strategy.scope():
            layer = SpectralNormalization(keras.layers.Dense(6))
            layer.build((None, 4))
        u0 = layer.u.numpy().copy()

        @tf.function
        def step(x):
            return layer(x, training=True)

        data = tf.data.Dataset.from_tensor_slices(tf.random.normal((8, 4))).batch(8)
        for batch in strategy.experimental_distribute_dataset(data):
            strategy.run(step, args=(batch,))
        replicas = strategy.experimental_local_results(layer.u.value)
        self.assertLen(replicas, 2)
        self.assertAllClose(replicas[0], replicas[1], rtol=0, atol=0)
        self.assertNotAllClose(replicas[0], u0)

    def test_config_round_trip(self):
        layer = SpectralNormalization(keras.layers.Conv2D(4, 3), power_iterations=2)
        clone = SpectralNormalization.from_config(layer.get_config())
        self.assertEqual(clone.power_iterations, 2)
        self.assertIsInstance(clone.layer, keras.layers.Conv2D)
        self.assertEqual(clone.layer.filters, 4)

    def test_bad_arguments_are_rejected_with_their_names(self):
        with pytest.raises(ValueError, match="power_iterations=0"):
            SpectralNormalization(keras.layers.Dense(2), power_iterations=0)
        with pytest.raises(ValueError, match="layer=LayerNormalization"):
            SpectralNormalization(keras.layers.LayerNormalization())
