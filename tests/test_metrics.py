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


def _samples_with_moments(n, mean, covariance, seed):
    """n rows whose sample mean and (unbiased) covariance are exactly `mean` and `covariance`."""
    x = np.random.RandomState(seed).randn(n, len(mean))
    x -= x.mean(0)
    whiten = np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)))
    return x @ whiten.T @ np.linalg.cholesky(covariance).T + mean


def test_fid_of_two_gaussians_has_its_closed_form():
    """Covariances with the same eigenvectors R: C1 = R diag(a) R^T, C2 = R diag(b) R^T, so
    (C1 C2)^(1/2) = R diag(sqrt(ab)) R^T and FID = |m1 - m2|^2 + sum((sqrt(a) - sqrt(b))^2), by hand."""
    rotation, _ = np.linalg.qr(np.random.RandomState(7).randn(4, 4))
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    m1, m2 = np.array([0.0, 1.0, -2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    c1, c2 = rotation @ np.diag(a) @ rotation.T, rotation @ np.diag(b) @ rotation.T
    expected = 1 + 4 + (1 + 1 + 0 + 0.25)  # |m1 - m2|^2 = 5; (1-2)^2 + (2-1)^2 + (3-3)^2 + (0.5-1)^2 = 2.25
    assert np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) == expected
    np.testing.assert_allclose(metrics.frechet_distance_from_statistics(m1, c1, m2, c2), expected, rtol=1e-9)
    x, y = _samples_with_moments(500, m1, c1, seed=1), _samples_with_moments(400, m2, c2, seed=2)
    np.testing.assert_allclose(metrics.frechet_distance(x, y), expected, rtol=1e-6)
    np.testing.assert_allclose(metrics.frechet_distance(y, x), expected, rtol=1e-6)
    # The same covariance and shifted means: only the mean term, |m1 - m2|^2 = 5.
    np.testing.assert_allclose(metrics.frechet_distance(x, x + (m2 - m1)), 5.0, rtol=1e-6)


def test_inception_score_of_known_logits_by_hand():
    """Two classes, half the images sure of each (p = (1, 0) or (0, 1)): p(y) = (1/2, 1/2), each KL term is
    log 2, IS = 2. Uniform predictions: KL = 0, IS = 1. Three classes, p(y|x) in {(a, b, b), (b, a, b),
    (b, b, a)} equally often: p(y) uniform, IS = exp(log 3 + a log a + 2 b log b)."""
    sure = np.array([[50.0, 0.0], [0.0, 50.0]] * 8)
    assert metrics.inception_score(sure, splits=1)[2] == pytest.approx(2.0, rel=1e-9)
    assert metrics.inception_score(np.full((6, 5), 0.3), splits=1)[2] == pytest.approx(1.0, rel=1e-12)
    logits = np.log(np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]] * 4))
    expected = np.exp(np.log(3) + 0.6 * np.log(0.6) + 2 * 0.2 * np.log(0.2))  # 1.1386...
    mean, std, whole = metrics.inception_score(logits + 5.0, splits=2)  # a shift of all logits changes nothing
    assert whole == pytest.approx(expected, rel=1e-9) and mean == pytest.approx(expected, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12)


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
    expected_mean, expected_std = numpy_blocked_kid(real, fake, max_block_size=100)
    np.testing.assert_allclose(block_mean, expected_mean, rtol=1e-6)
    np.testing.assert_allclose(block_std, expected_std, rtol=1e-6)
    assert block_std > 0 and block_mean != pytest.approx(mean, rel=1e-6)  # really blocked: another estimate


def numpy_blocked_kid(a, b, max_block_size):
    """TF-GAN's blocked KID: ceil(max(m, n) / max_block_size) blocks, each side split into consecutive
    runs of near-equal size (the larger runs last); the mean of the blocks' estimates and its standard error."""
    blocks = -(-max(len(a), len(b)) // max_block_size)

    def bounds(n):
        small, larger = n // blocks, n % blocks
        sizes = [small] * (blocks - larger) + [small + 1] * larger
        return np.concatenate([[0], np.cumsum(sizes)])

    ra, rb = bounds(len(a)), bounds(len(b))
    estimates = np.array([numpy_kid(a[ra[i]:ra[i + 1]], b[rb[i]:rb[i + 1]]) for i in range(blocks)])
    return estimates.mean(), np.sqrt(np.sum((estimates - estimates.mean()) ** 2) / (blocks - 1) / blocks)


def test_fid_of_sets_held_as_rows_equals_tensorflow_gans():
    """Sets of fewer rows than dimensions are held as their factor (Moments.of_rows): FID through n x n
    matrices equals tensorflow-gan's, with a factor on one side, on both, and on neither; the moments' traces
    and covariances are the sets' own."""
    from sagan_tf.eval.tfgan import tfgan_eval
    import tensorflow as tf

    rng = np.random.RandomState(4)
    many, few, fewer = rng.randn(400, 64), rng.randn(9, 64) * 1.5 + 0.3, rng.randn(4, 64) - 0.5

    def full(rows):
        return metrics.Moments(len(rows), rows.mean(0), covariance=np.cov(rows, rowvar=False))

    for first, second in ((many, few), (few, many), (few, fewer), (fewer, few)):
        expected = float(tfgan_eval.frechet_classifier_distance_from_activations(tf.constant(first),
                                                                                 tf.constant(second)))
        assert expected > 1.0
        for a, b in ((metrics.Moments.of_rows(first), metrics.Moments.of_rows(second)),
                     (metrics.Moments.of_rows(first), full(second)), (full(first), metrics.Moments.of_rows(second)),
                     (full(first), full(second))):
            np.testing.assert_allclose(metrics.frechet_distance_of(a, b), expected, rtol=1e-7)
    held = metrics.Moments.of_rows(few)
    np.testing.assert_allclose(held.covariance, np.cov(few, rowvar=False), atol=1e-12)
    np.testing.assert_allclose(held.trace(), np.trace(np.cov(few, rowvar=False)), rtol=1e-12)
    assert abs(metrics.frechet_distance_of(held, metrics.Moments.of_rows(few))) < 1e-9
    # The same rows shifted by 0.1 in each of 64 dimensions: only the mean term, 64 * 0.01, by hand.
    np.testing.assert_allclose(metrics.frechet_distance_of(held, metrics.Moments.of_rows(few + 0.1)), 0.64, rtol=1e-9)
    with pytest.raises(ValueError, match="one of them"):
        metrics.Moments(2, np.zeros(3))


def test_fid_equals_tensorflow_gans_and_a_held_root_changes_nothing():
    """FID by eigendecompositions against tensorflow-gan's SVD-based function, full-rank and rank-deficient
    (per-class statistics of a few images); passing the first covariance's root gives the same number."""
    from sagan_tf.eval.tfgan import tfgan_eval
    import tensorflow as tf

    rng = np.random.RandomState(3)
    real = rng.randn(400, 64)
    for fake in (rng.randn(300, 64) * 1.3 + 0.2, rng.randn(4, 64) + 1.0):
        expected = float(tfgan_eval.frechet_classifier_distance_from_activations(tf.constant(real), tf.constant(fake)))
        np.testing.assert_allclose(metrics.frechet_distance(real, fake), expected, rtol=1e-7)
        mean, covariance = metrics.activation_statistics(real)
        held = metrics.frechet_distance_from_statistics(mean, covariance, *metrics.activation_statistics(fake),
                                                        root1=metrics.covariance_root(covariance))
        np.testing.assert_allclose(held, expected, rtol=1e-7)
    root = metrics.covariance_root(np.cov(real, rowvar=False))
    np.testing.assert_allclose(root @ root, np.cov(real, rowvar=False), atol=1e-10)
