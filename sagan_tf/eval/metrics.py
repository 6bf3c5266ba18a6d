"""FID, Inception Score and KID of classifier outputs.

Inputs are classifier outputs, so any classifier can be injected: pool_3 activations [N, D] for FID
and KID, logits [N, K] for the Inception Score. Computations run in float64. The Inception Score and KID
are tensorflow-gan's eval functions; FID is computed here with symmetric eigendecompositions, which give
tensorflow-gan's value (tested) several times faster than its SVDs and let the real side's matrix square
root be computed once and reused (`Moments.root`). A set of n <= D rows is held as its centred rows
(`Moments.factor`): its covariance has rank below n, and FID's matrix term then needs n x n matrices, not
D x D ones (intra-class FID over many classes of few images each).
"""

import numpy as np
import tensorflow as tf


def _tfgan():
    """tensorflow-gan's eval functions, imported on first use: the import brings TensorFlow Probability
    (about 1.5 s), which a command that computes no Inception Score or KID (train without periodic
    evaluation, export, sample) should not pay."""
    from sagan_tf.eval.tfgan import tfgan_eval

    return tfgan_eval


def _float64(x):
    return tf.constant(np.asarray(x, np.float64))


def activation_statistics(activations):
    """(mean [D], covariance [D, D]) of activations [N, D] (unbiased covariance, as FID uses)."""
    activations = np.asarray(activations, np.float64)
    if activations.ndim != 2 or len(activations) < 2:
        raise ValueError(f"Activations must be [N >= 2, D]. Received shape {activations.shape}.")
    return activations.mean(axis=0), np.cov(activations, rowvar=False)


def frechet_distance(activations1, activations2):
    """FID between two sets of activations [N, D] (Heusel et al., 2017); a set of N <= D rows is held as
    its factor (`Moments`)."""
    return frechet_distance_of(_moments(activations1), _moments(activations2))


def _moments(activations):
    activations = np.asarray(activations, np.float64)
    if activations.ndim == 2 and held_as_rows(len(activations), activations.shape[1]):
        return Moments.of_rows(activations)
    return Moments(len(activations), *activation_statistics(activations))


def held_as_rows(count, width):
    """Whether a set of `count` rows of `width` numbers is held as its rows (`Moments.of_rows`): with no more
    rows than dimensions, FID's matrix term is cheaper in count x count matrices than in width x width ones."""
    return 2 <= count <= width


def covariance_root(covariance):
    """The symmetric positive semi-definite square root of a covariance matrix (eigenvalues below 0, float
    noise, count as 0)."""
    values, vectors = np.linalg.eigh(np.asarray(covariance, np.float64))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(cov1, cov2, root1=None):
    """tr((C1 C2)^(1/2)). With R = C1^(1/2), C1 C2 = R (R C2 R) R^-1 has the eigenvalues of the symmetric
    positive semi-definite R C2 R, so the trace is the sum of their square roots. `root1`: R, when the
    caller holds it already."""
    root1 = covariance_root(cov1) if root1 is None else root1
    product = root1 @ np.asarray(cov2, np.float64) @ root1
    values = np.linalg.eigvalsh((product + product.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(values, 0.0, None))))


class Moments:
    """Mean [D] and covariance [D, D] of a set of `count` rows (0: not known), or, instead of the covariance,
    its factor F [D, count] (F F^T is the covariance: the rows centred and scaled by 1/sqrt(count - 1)).
    `root`: the covariance's square root, when the caller holds it already."""

    def __init__(self, count, mean, covariance=None, factor=None, root=None):
        if (covariance is None) == (factor is None):
            raise ValueError("Moments take a covariance or a factor, one of them.")
        self.count, self.mean, self._covariance, self.factor = int(count), mean, covariance, factor
        self._root = root

    @classmethod
    def of_rows(cls, rows):
        """The moments of rows [n >= 2, D], held as their factor."""
        rows = np.asarray(rows, np.float64)
        if rows.ndim != 2 or len(rows) < 2:
            raise ValueError(f"Rows must be [N >= 2, D]. Received shape {rows.shape}.")
        mean = rows.mean(axis=0)
        return cls(len(rows), mean, factor=(rows - mean).T / np.sqrt(len(rows) - 1.0))

    @property
    def covariance(self):
        return self._covariance if self._covariance is not None else self.factor @ self.factor.T

    def trace(self):
        return float(np.sum(self.factor ** 2)) if self.factor is not None else float(np.trace(self._covariance))

    def root(self):
        """The covariance's square root, computed once (real statistics meet every evaluation's)."""
        if self._root is None:
            self._root = covariance_root(self.covariance)
        return self._root


def frechet_distance_of(first, second):
    """FID of two `Moments`. With a factor on either side, tr((C1 C2)^(1/2)) comes from small matrices:
    for C1 = F1 F1^T, C1 C2 has the nonzero eigenvalues of F1^T C2 F1 [n1, n1], and with C2 = F2 F2^T too,
    their square roots are the singular values of F1^T F2 [n1, n2]."""
    mean1, mean2 = np.asarray(first.mean, np.float64), np.asarray(second.mean, np.float64)
    if mean1.shape != mean2.shape:
        raise ValueError(f"Statistics of different widths: {mean1.shape} and {mean2.shape}.")
    if first.factor is None and second.factor is None:
        trace_sqrt = trace_sqrt_product(first.covariance, second.covariance, first.root())
    elif first.factor is not None and second.factor is not None:
        trace_sqrt = float(np.sum(np.linalg.svd(first.factor.T @ second.factor, compute_uv=False)))
    else:
        factor, other = (first, second) if first.factor is not None else (second, first)
        product = factor.factor.T @ other.covariance @ factor.factor
        values = np.linalg.eigvalsh((product + product.T) / 2.0)
        trace_sqrt = float(np.sum(np.sqrt(np.clip(values, 0.0, None))))
    return float(np.sum((mean1 - mean2) ** 2) + first.trace() + second.trace() - 2.0 * trace_sqrt)


def frechet_distance_from_statistics(mean1, cov1, mean2, cov2, root1=None):
    """FID from (mean, covariance) pairs: |m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)); `root1` as in
    `trace_sqrt_product`."""
    first = Moments(0, mean1, covariance=np.asarray(cov1, np.float64), root=root1)
    return frechet_distance_of(first, Moments(0, mean2, covariance=np.asarray(cov2, np.float64)))


def inception_score(logits, splits=10):
    """Inception Score exp(E_x KL(p(y|x) || p(y))) of logits [N, K] (Salimans et al., 2016).

    Returns (mean over `splits` equal splits, their standard deviation, the score of all N at once).
    """
    logits = np.asarray(logits, np.float64)
    if splits < 1 or len(logits) < splits:
        raise ValueError(f"Cannot split {len(logits)} logits into `splits={splits}` parts.")
    scores = [float(_tfgan().classifier_score_from_logits(_float64(part)))
              for part in np.array_split(logits, splits)]
    whole = float(_tfgan().classifier_score_from_logits(_float64(logits)))
    return float(np.mean(scores)), float(np.std(scores)), whole


def kernel_distance(activations1, activations2, max_block_size=1024):
    """KID (Binkowski et al., 2018): unbiased MMD^2 with the cubic polynomial kernel; (mean, std).

    TF-GAN averages the estimate over blocks of at most `max_block_size` rows; `std` is their spread,
    None when everything fits in one block.
    """
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # TF-GAN's map_fn(back_prop=False) deprecation notice, on every call
    try:
        mean, std = _tfgan().kernel_classifier_distance_and_std_from_activations(
            _float64(activations1), _float64(activations2), max_block_size=max_block_size
        )
    finally:
        logger.setLevel(level)
    std = float(std)
    return float(mean), (None if np.isnan(std) else std)  # a single block has no spread estimate
