"""Classifier statistics accumulated batch by batch, so N images are never held at once.

`Statistics` keeps, for N images: the running mean and covariance of pool_3 (float64 sums), the first
`keep` pool_3 rows (KID uses a subset), all logits if the classifier has them (IS needs per-sample
probabilities; 50,000 x 1008 float32 is 200 MB), and optionally per-class moments (intra-class FID).
"""

import time

import keras
import numpy as np

from sagan_tf.commands import plain_output
from sagan_tf.eval import metrics
from sagan_tf.eval.classifiers import LOGITS, POOL_3


class _Report:
    """Progress of a set: a Keras bar on a terminal, else a plain line at every tenth of the set."""

    def __init__(self, total, label):
        self.total, self.label, self.next = total, label or "Images", 0
        self.bar = None if plain_output() else keras.utils.Progbar(total, stateful_metrics=["img/s"],
                                                                     unit_name="image")
        if self.bar is not None and label:
            print(label)

    def update(self, count, rate):
        if self.bar is not None:
            self.bar.update(count, [("img/s", rate)])
        elif count >= self.next or count >= self.total:
            print(f"{self.label}: {count}/{self.total} images, {rate:.1f} images/s", flush=True)
            self.next = count + max(self.total // 10, 1)


class RunningMoments:
    """Mean and unbiased covariance of rows [n, D] fed in batches (float64, shifted for stability)."""

    def __init__(self):
        self.count, self._shift, self._sum, self._outer = 0, None, None, None

    def update(self, rows):
        rows = np.asarray(rows, np.float64)
        if self._shift is None:
            self._shift = rows.mean(axis=0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((rows.shape[1], rows.shape[1]))
        centred = rows - self._shift
        self.count += len(rows)
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred

    @property
    def mean(self):
        return self._shift + self._sum / self.count

    @property
    def covariance(self):
        if self.count < 2:
            raise ValueError(f"A covariance needs at least 2 rows; have {self.count}.")
        centred_mean = self._sum / self.count
        return (self._outer - self.count * np.outer(centred_mean, centred_mean)) / (self.count - 1)


class ClassRows:
    """One class's rows [n, D] as they come: kept while n <= D (a covariance of rank below n is held as its
    factor, `metrics.Moments`), folded into `RunningMoments` past that. So per-class statistics of many
    classes of few images each take n x D numbers per class, not D x D."""

    def __init__(self):
        self.count, self._rows, self._running = 0, [], None

    def update(self, rows):
        rows = np.asarray(rows, np.float32)
        self.count += len(rows)
        if self._running is not None:
            self._running.update(rows)
            return
        self._rows.append(rows)
        if self.count > rows.shape[1]:  # past metrics.held_as_rows (a class of fewer than 2 rows is dropped)
            self._running = RunningMoments()
            self._running.update(np.concatenate(self._rows))
            self._rows = None

    def moments(self):
        if self._running is not None:
            return metrics.Moments(self.count, self._running.mean, covariance=self._running.covariance)
        return metrics.Moments.of_rows(np.concatenate(self._rows))


class Statistics:
    """What the metrics need from one image set (real or generated).

    Attributes:
        count: images seen.
        mean [D], covariance [D, D]: of pool_3 (float64), or None without pool_3.
        kept [min(count, keep), D]: the first pool_3 rows, for KID.
        logits [count, K] or None.
        class_moments: {label: `metrics.Moments`} when accumulated per class.
    """

    def __init__(self, count, mean, covariance, kept, logits=None, class_moments=None, meta=None):
        self.count, self.mean, self.covariance, self.kept = count, mean, covariance, kept
        self.logits, self.class_moments, self.meta = logits, class_moments or {}, meta or {}
        self._moments = None

    def moments(self, label=None):
        """`metrics.Moments` of pool_3 (of class `label`'s, when given), made once: real statistics meet
        every evaluation's generated ones and keep their matrix square root. A set whose rows are all kept
        and fewer than their width is held as its factor."""
        if label is not None:
            return self.class_moments[label]
        if self._moments is None:
            rows = self.kept
            if rows is not None and len(rows) == self.count and metrics.held_as_rows(self.count, rows.shape[1]):
                self._moments = metrics.Moments.of_rows(rows)
            else:
                self._moments = metrics.Moments(self.count, self.mean, covariance=self.covariance)
        return self._moments

    def to_arrays(self):
        arrays = {"count": np.int64(self.count), "mean": self.mean, "covariance": self.covariance, "kept": self.kept}
        if self.logits is not None:
            arrays["logits"] = self.logits
        if self.class_moments:
            labels = sorted(self.class_moments)
            moments = [self.class_moments[c] for c in labels]
            arrays["class_labels"] = np.array(labels, np.int64)
            arrays["class_counts"] = np.array([m.count for m in moments], np.int64)
            arrays["class_means"] = np.stack([m.mean for m in moments])
            # A class held as its factor [D, n] is stored as its n centred, scaled rows; the others as covariances.
            arrays["class_factored"] = np.array([m.factor is not None for m in moments])
            factors = [m.factor.T for m in moments if m.factor is not None]
            covariances = [m.covariance for m in moments if m.factor is None]
            width = len(self.class_moments[labels[0]].mean)
            arrays["class_factor_rows"] = (np.concatenate(factors) if factors else np.zeros((0, width))).astype(
                np.float32)
            arrays["class_covariances"] = (np.stack(covariances) if covariances else np.zeros((0, width, width))
                                           ).astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays, meta=None):
        class_moments = {}
        if "class_labels" in arrays:
            factor_rows, covariances = arrays["class_factor_rows"], arrays["class_covariances"]
            row, covariance = 0, 0
            for i, label in enumerate(arrays["class_labels"]):
                count, mean = int(arrays["class_counts"][i]), arrays["class_means"][i]
                if arrays["class_factored"][i]:
                    factor = factor_rows[row:row + count].T.astype(np.float64)
                    class_moments[int(label)] = metrics.Moments(count, mean, factor=factor)
                    row += count
                else:
                    class_moments[int(label)] = metrics.Moments(count, mean,
                                                                covariance=covariances[covariance].astype(np.float64))
                    covariance += 1
        return cls(int(arrays["count"]), arrays["mean"], arrays["covariance"], arrays["kept"],
                   arrays["logits"] if "logits" in arrays else None, class_moments, meta)


def accumulate(batches, classifier, num_samples, keep=10_000, per_class=False, progress=True, label=""):
    """Runs `classifier` over `batches` until `num_samples` images and returns their `Statistics`.

    Args:
        batches: iterable of (images float [b, H, W, C] in [-1, 1], labels int [b] or None).
        classifier: a `sagan_tf.eval.classifiers.Classifier`.
        num_samples: images to use; fewer if `batches` ends first (`count` says how many).
        keep: pool_3 rows kept for KID.
        per_class: also accumulate moments per label (intra-class FID).
        progress: a progress bar on stdout with the classifier's images/s.

    `meta` of the result holds `classifier_images_per_second` (classifier time only) and `seconds`.
    """
    moments, class_rows = RunningMoments(), {}
    kept, logits = [], []
    count, classifier_seconds, start = 0, 0.0, time.time()
    report = _Report(num_samples, label) if progress else None
    for images, labels in batches:
        images = np.asarray(images)[: num_samples - count]
        if not len(images):
            break
        tick = time.time()
        outputs = {k: np.asarray(v) for k, v in classifier(images).items()}
        classifier_seconds += time.time() - tick
        if POOL_3 in outputs:
            pool = outputs[POOL_3]
            moments.update(pool)
            if sum(len(k) for k in kept) < keep:
                kept.append(pool[: keep - sum(len(k) for k in kept)])
            if per_class:
                if labels is None:
                    raise ValueError("Per-class statistics need labels; this image source has none.")
                labels = np.asarray(labels)[: len(images)]
                for c in np.unique(labels):
                    class_rows.setdefault(int(c), ClassRows()).update(pool[labels == c])
        if LOGITS in outputs:
            logits.append(outputs[LOGITS].astype(np.float32))
        count += len(images)
        if report is not None:
            report.update(count, count / max(classifier_seconds, 1e-9))
        if count >= num_samples:
            break
    if count < 2:
        raise ValueError(f"Only {count} images to evaluate {label or 'a set'}: need at least 2.")
    has_pool = moments.count > 0
    classes = {c: rows.moments() for c, rows in class_rows.items() if rows.count >= 2}
    meta = {"classifier_images_per_second": count / max(classifier_seconds, 1e-9),
            "seconds": time.time() - start}
    return Statistics(
        count,
        moments.mean if has_pool else None,
        moments.covariance if has_pool else None,
        np.concatenate(kept).astype(np.float32) if kept else None,
        np.concatenate(logits) if logits else None,
        classes,
        meta,
    )
