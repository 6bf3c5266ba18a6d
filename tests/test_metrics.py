"""FID, IS and KID against independent numpy/scipy computations, with a classifier built here."""

import keras
import numpy as np
import pytest
import scipy.linalg
import scipy.special

from sagan_tf.eval import metrics


def numpy_fid(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return np.sum((mu_a - mu_b) ** 2) + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)


def numpy_is(logits):
    p = scipy.special.softmax(logits, axis=1)
    marginal = p.mean(0, keepdims=True)
    return np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1)))


def numpy_kid(a, b):
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    m, n = len(a), len(b)
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.mean())


@pytest.fixture
def features():
    """Activations of a tiny fixed classifier on two different image distributions."""
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")])
    rng = np.random.RandomState(0)
    real = classifier(rng.rand(300, 8, 8, 3).astype(np.float32)).numpy().astype(np.float64)
    fake = classifier((rng.rand(250, 8, 8, 3) ** 2).astype(np.float32)).numpy().astype(np.float64)
    return real, fake


def test_fid_matches_numpy_and_statistics_path(features):
    real, fake = features
    expected = numpy_fid(real, fake)
    assert expected > 0.01
    np.testing.assert_allclose(metrics.frechet_distance(real, fake), expected, rtol=1e-5)
    cached = metrics.frechet_distance_from_statistics(*metrics.activation_statistics(real),
                                                      *metrics.activation_statistics(fake))
    np.testing.assert_allclose(cached, expected, rtol=1e-5)
    assert abs(metrics.frechet_distance(real, real)) < 1e-6


def test_inception_score_matches_numpy():
    logits = np.random.RandomState(1).randn(1000, 10) * 3
    mean, std, whole = metrics.inception_score(logits, splits=10)
    per_split = [numpy_is(part) for part in np.array_split(logits, 10)]
    np.testing.assert_allclose(mean, np.mean(per_split), rtol=1e-6)
    np.testing.assert_allclose(std, np.std(per_split), rtol=1e-5)
    np.testing.assert_allclose(whole, numpy_is(logits), rtol=1e-6)
    confident = np.eye(10)[np.arange(1000) % 10] * 50  # sharp and balanced: close to K
    assert metrics.inception_score(confident, splits=1)[2] == pytest.approx(10.0, rel=1e-3)
    with pytest.raises(ValueError, match="splits=20"):
        metrics.inception_score(logits[:10], splits=20)


def test_kid_matches_numpy(features):
    real, fake = features
    mean, _ = metrics.kernel_distance(real, fake, max_block_size=10_000)  # one block: the full estimate
    np.testing.assert_allclose(mean, numpy_kid(real, fake), rtol=1e-4, atol=1e-9)
    assert mean > 0
    block_mean, block_std = metrics.kernel_distance(real, fake, max_block_size=100)  # spread over blocks
    assert np.isfinite(block_std) and block_std > 0
    np.testing.assert_allclose(block_mean, mean, rtol=0.5)
