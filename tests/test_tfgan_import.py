"""Tests of the tensorflow-gan import workaround (sagan_tf.eval.tfgan)."""

import subprocess
import sys

import numpy as np
import scipy.linalg
import tensorflow as tf

from sagan_tf.eval.tfgan import import_tfgan_eval, tfgan_eval


def test_plain_import_of_tensorflow_gan_fails_on_this_tensorflow():
    # The reason the workaround exists; if this starts passing, the workaround can go.
    code = "import tensorflow_gan"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "estimator" in result.stderr


def test_workaround_imports_eval_in_a_fresh_process():
    code = (
        "from sagan_tf.eval.tfgan import tfgan_eval; "
        "print(tfgan_eval.__name__, callable(tfgan_eval.classifier_score_from_logits))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "tensorflow_gan.python.eval True" in result.stdout


def test_frechet_distance_matches_scipy():
    rng = np.random.RandomState(0)
    a = rng.randn(500, 8)
    b = rng.randn(400, 8) @ rng.randn(8, 8) * 0.5 + 1.0
    fid = tfgan_eval.frechet_classifier_distance_from_activations(
        tf.constant(a, tf.float64), tf.constant(b, tf.float64)
    )
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    np.testing.assert_allclose(float(fid), expected, rtol=1e-4)
    assert import_tfgan_eval() is tfgan_eval
