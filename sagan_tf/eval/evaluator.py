"""FID, IS, KID and intra-class FID of a generator against a dataset, with cached real statistics.

Real statistics (pool_3 mean and covariance, the KID subset, per-class moments on request) are
computed once per (data source, resolution, channels, sample count, classifier, first-batch
fingerprint) and cached as `<cache_dir>/real_stats/<source>-<R>px-<N>-<hash>.npz`, with a JSON
description of what produced them. Generated statistics are streamed from the generator (its EMA
copy when training keeps one) with a fixed z seed and uniformly drawn labels.
"""

import hashlib
import json
import os
import re
import weakref

import gin
import numpy as np
import tensorflow as tf

from sagan_tf import images as images_lib
from sagan_tf.data.pipeline import to_channels
from sagan_tf.gin_files import ConfigError
from sagan_tf.eval import classifiers as classifiers_lib
from sagan_tf.eval import inception, metrics, streaming

CACHE_VERSION = 3  # 2: real images in a fixed-seed random order, quantised to uint8; 3: small classes kept as rows


def channel_mean(images):
    """[..., C] -> [..., 1], the mean over channels (how a grey dataset trained as 3 equal channels is
    read back: on real images the mean of three equal values is that value exactly)."""
    return tf.reduce_mean(tf.cast(images, tf.float32), axis=-1, keepdims=True)


def sampler(generator, reduce_channels=False):
    """A tf.function (generator inputs z [b, dim_z], labels [b] or None) -> 8-bit-quantised images of
    `generator` in eval mode; with `reduce_channels`, their channel mean [b, R, R, 1]. Keep it to sample
    again without a new trace (`Evaluator` keeps one per generator)."""

    def draw(z, y):
        images = generator(z, y, training=False)
        # Quantised to 8 bits as the real images were stored, so that FID compares like with like.
        return images_lib.quantize(channel_mean(images) if reduce_channels else images)

    return tf.function(draw, reduce_retracing=True)


def generator_batches(generator, num_classes, num_samples, batch_size, seed=0, reduce_channels=False, sample=None):
    """Yields (images [b, R, R, C] in [-1, 1], labels [b]) from `generator` with fixed-seed z and labels;
    with `reduce_channels`, [b, R, R, 1]: the channel mean of each image, taken before quantising.
    `sample`: a `sampler` of the generator made before (else a new one, traced on its first batch)."""
    sample = sample or sampler(generator, reduce_channels)
    rng = np.random.RandomState(seed)
    produced = 0
    while produced < num_samples:
        batch = min(batch_size, num_samples - produced)
        z = rng.randn(batch, generator.dim_z).astype(np.float32)
        labels = rng.randint(0, num_classes, batch).astype(np.int32) if num_classes else None
        images = sample(z, labels)
        produced += batch
        yield images.numpy(), labels


def dataset_batches(input_spec, reduce_channels=False):
    """Yields (images, labels) numpy batches of an evaluation `InputSpec` (built without repeat), quantised
    to 8 bits like the generated ones (a resize leaves real images between levels); with
    `reduce_channels`, their channel mean."""
    for images, labels in input_spec.input_fn(None):
        images = images_lib.quantize(channel_mean(images) if reduce_channels else images)
        yield images.numpy(), labels.numpy()


def _fingerprint(images):
    return hashlib.sha1(np.round(np.asarray(images, np.float32), 4).tobytes()).hexdigest()[:16]


def real_statistics(input_spec, classifier, num_samples, keep=10_000, per_class=False, cache_dir=None,
                    progress=True, reduce_channels=False):
    """`Statistics` of the real images of `input_spec`, from the cache when they were computed before.

    With `reduce_channels` the images are reduced to their channel mean first; the cache key names the
    channels the classifier saw, so grey images replicated to 3 channels and reduced share the cache of
    the same images read as 1 channel."""
    batches = dataset_batches(input_spec, reduce_channels)
    try:
        first = next(batches)
    except StopIteration:
        raise ValueError(f"The data source {input_spec.source_name} yielded no batch to evaluate.") from None
    key = {
        "version": CACHE_VERSION,
        "source": input_spec.source_name,
        "resolution": input_spec.resolution,
        "channels": 1 if reduce_channels else input_spec.channels,
        "num_samples": int(num_samples),
        "keep": int(keep),
        "per_class": bool(per_class),
        "classifier": classifiers_lib.describe(classifier),
        "first_batch_sha1": _fingerprint(first[0]),
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", input_spec.source_name)[-60:]
    directory = os.path.join(cache_dir or inception.cache_dir(), "real_stats")
    path = os.path.join(directory, f"{stem}-{input_spec.resolution}px-{num_samples}-{digest}.npz")
    if os.path.exists(path):
        with np.load(path) as arrays:
            meta = json.loads(str(arrays["meta"]))
            stats = streaming.Statistics.from_arrays(arrays, meta)
        stats.meta["cache"] = path
        stats.meta["cached"] = True
        return stats

    def all_batches():
        yield first
        yield from batches

    stats = streaming.accumulate(all_batches(), classifier, num_samples, keep, per_class, progress,
                                 label=f"Real statistics of {input_spec.source_name} ({num_samples} images)")
    if stats.mean is None:
        raise ValueError(f"The classifier {classifier.name} has no pool_3 output: cannot compute FID statistics.")
    stats.meta.update(key, count=stats.count)
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, meta=json.dumps(stats.meta), **stats.to_arrays())
    os.replace(tmp, path)  # atomic: never a half-written cache
    stats.meta["cache"], stats.meta["cached"] = path, False
    return stats


def compute_metrics(real, fake, splits=10):
    """Metrics of generated `fake` against `real` `Statistics`: a flat dict of floats."""
    results = {"num_real": real.count, "num_generated": fake.count}
    if fake.mean is not None and real.mean is not None:
        results["fid"] = metrics.frechet_distance_of(real.moments(), fake.moments())
        if real.kept is not None and fake.kept is not None and min(len(real.kept), len(fake.kept)) >= 2:
            results["kid"], results["kid_std"] = metrics.kernel_distance(real.kept, fake.kept)
    if fake.logits is not None and len(fake.logits) >= splits:
        results["is"], results["is_std"], results["is_unsplit"] = metrics.inception_score(fake.logits, splits)
    shared = sorted(set(real.class_moments) & set(fake.class_moments))
    if shared:
        per_class = [metrics.frechet_distance_of(real.moments(c), fake.moments(c)) for c in shared]
        results["intra_fid"] = float(np.mean(per_class))
        results["intra_fid_per_class"] = dict(zip(map(str, shared), per_class))
    return results


@gin.configurable
class Evaluator:
    """Evaluates generators against one real dataset; the classifier and real statistics load once.

    Args:
        num_samples: generated images (and real images, at most the dataset's size); 50,000 as in the paper.
        batch_size: images per generator and classifier call.
        classifier: a name for `get_classifier` ("auto", "tfgan", "port", a handle or path) or a
            `Classifier` instance.
        kid_samples: pool_3 rows of each set kept for KID.
        splits: Inception Score splits.
        intra_fid: also compute FID per class (conditional models) and their mean.
        cache_dir: real-statistics cache (default $SAGAN_TF_CACHE or ~/.cache/sagan_tf).
        seed: z and label seed of the generated images (the same images at every evaluation).
        progress: progress bars.
        channel_mean: evaluate every image (real and generated) as the mean of its channels: for a grey
            dataset trained as 3 replicated channels, read back as grey the way BigGAN-PyTorch's
            Fashion-MNIST samples were stored (gin: `Evaluator.channel_mean = True`).
    """

    def __init__(self, num_samples=50_000, batch_size=100, classifier="auto", kid_samples=10_000, splits=10,
                 intra_fid=False, cache_dir=None, seed=0, progress=True, channel_mean=False):
        if num_samples < 2 or batch_size < 1:  # a gin binding's mistake: the commands' one-line error
            raise ConfigError(f"Evaluator.num_samples = {num_samples!r} with Evaluator.batch_size = {batch_size!r}: "
                              "an evaluation needs 2 or more samples in batches of 1 or more",
                              "bind Evaluator.num_samples >= 2 and Evaluator.batch_size >= 1")
        cache_dir = os.path.expanduser(cache_dir) if cache_dir else cache_dir  # a gin string's "~/..."
        self.num_samples, self.batch_size, self.kid_samples = num_samples, batch_size, kid_samples
        self.splits, self.intra_fid, self.cache_dir, self.seed = splits, intra_fid, cache_dir, seed
        self.progress, self.channel_mean = progress, bool(channel_mean)
        self._classifier_spec, self._classifier, self._real = classifier, None, {}
        # One traced sampler per generator: periodic evaluation samples the same networks again and again.
        self._samplers = weakref.WeakKeyDictionary()

    @property
    def classifier(self):
        if self._classifier is None:
            spec = self._classifier_spec
            self._classifier = classifiers_lib.get_classifier(spec) if isinstance(spec, str) else spec
        return self._classifier

    def real(self, input_spec):
        """Real `Statistics` of an evaluation `InputSpec` (memoised, and cached on disk)."""
        key = (input_spec.source_name, input_spec.resolution, input_spec.channels)
        if key not in self._real:
            self._real[key] = real_statistics(input_spec, self.classifier, self.num_samples, self.kid_samples,
                                              self.intra_fid, self.cache_dir, self.progress, self.channel_mean)
        return self._real[key]

    def generated(self, generator, num_classes):
        if generator not in self._samplers:
            self._samplers[generator] = sampler(generator, self.channel_mean)
        batches = generator_batches(generator, num_classes, self.num_samples, self.batch_size, self.seed,
                                    self.channel_mean, self._samplers[generator])
        return streaming.accumulate(batches, self.classifier, self.num_samples, self.kid_samples,
                                    self.intra_fid and bool(num_classes), self.progress,
                                    label=f"Generated statistics ({self.num_samples} images)")

    def evaluate_images(self, images, labels, num_classes, input_spec):
        """Metrics of given 8-bit images (uint8 [N, H, W] or [N, H, W, C], labels [N]) against `input_spec`'s:
        another implementation's samples, evaluated exactly as a generator's are."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"Images must be uint8. Received dtype {images.dtype}.")
        if images.ndim == 3:
            images = images[..., None]
        images = to_channels(tf.constant(images), input_spec.channels)  # as the data pipeline does
        if self.channel_mean:
            images = tf.cast(tf.round(channel_mean(images)), tf.uint8)
        images = images.numpy()
        labels = np.asarray(labels).astype(np.int32).reshape(-1) if num_classes else None

        def batches():
            for start in range(0, min(len(images), self.num_samples), self.batch_size):
                chunk = images[start:start + self.batch_size].astype(np.float32) / 127.5 - 1.0
                yield chunk, None if labels is None else labels[start:start + self.batch_size]

        fake = streaming.accumulate(batches(), self.classifier, self.num_samples, self.kid_samples,
                                    self.intra_fid and bool(num_classes), self.progress,
                                    label=f"Given images ({min(len(images), self.num_samples)})")
        return self._compare(fake, input_spec)

    def _compare(self, fake, input_spec, **extra):
        real = self.real(input_spec)
        results = compute_metrics(real, fake, self.splits)
        results.update(classifier=self.classifier.name, **extra, real_statistics=real.meta.get("cache"),
                       real_source=input_spec.source_name, channel_mean=self.channel_mean)
        note = getattr(self.classifier, "note", None)
        if note:
            results["classifier_note"] = note
        return results

    def evaluate(self, generator, num_classes, input_spec):
        """Metrics of `generator` against `input_spec`'s images; with timing and provenance fields."""
        self.real(input_spec)  # real statistics first (they may take a while, and may fail)
        fake = self.generated(generator, num_classes)
        return self._compare(fake, input_spec, classifier_images_per_second=fake.meta["classifier_images_per_second"])


def format_table(results):
    """The headline metrics as an aligned text table."""
    rows = [("FID", "fid"), ("KID", "kid"), ("KID std", "kid_std"), ("IS (10 splits)", "is"), ("IS std", "is_std"),
            ("IS (unsplit)", "is_unsplit"), ("intra-class FID", "intra_fid"), ("generated images", "num_generated"),
            ("real images", "num_real"), ("classifier img/s", "classifier_images_per_second")]
    lines = []
    for title, key in rows:
        if results.get(key) is not None:
            value = results[key]
            text = f"{value:.6f}" if key.startswith("kid") else (f"{value:.3f}" if isinstance(value, float) else str(value))
            lines.append(f"{title:<18} {text:>14}")
    lines.append(f"{'classifier':<18} {results.get('classifier', '?')}")
    return "\n".join(lines)
