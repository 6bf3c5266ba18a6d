"""Streaming statistics, the real-statistics cache, classifiers, and the evaluation entry points."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.linalg
import scipy.special
import tensorflow as tf

from inception_weights import requires_weights
from sagan_tf.data import sources
from sagan_tf.data.pipeline import build_input
from sagan_tf.eval import classifiers, evaluator, metrics, streaming

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CountingClassifier(classifiers.Classifier):
    """A tiny fixed network with pool_3 [B, 12] and logits [B, 5]; counts the images it sees."""

    name = "tiny-test-classifier"
    outputs = (classifiers.POOL_3, classifiers.LOGITS)
    input_size = None

    def __init__(self):
        keras.utils.set_random_seed(3)
        self.features = keras.Sequential([keras.layers.Conv2D(12, 3, 2, activation="relu"),
                                          keras.layers.GlobalAveragePooling2D()])
        self.head = keras.layers.Dense(5)
        self.seen = 0

    def _forward(self, images):
        pool = self.features(images)
        return {classifiers.POOL_3: pool, classifiers.LOGITS: self.head(pool)}

    def __call__(self, images):
        self.seen += len(images)
        return super().__call__(images)


def test_running_moments_equal_numpy_over_uneven_batches():
    rows = np.random.RandomState(0).randn(103, 6) * 3 + 100  # a large mean tests the shifted sums
    moments = streaming.RunningMoments()
    for start, stop in [(0, 1), (1, 40), (40, 41), (41, 103)]:
        moments.update(rows[start:stop])
    assert moments.count == 103
    np.testing.assert_allclose(moments.mean, rows.mean(0), rtol=1e-12)
    np.testing.assert_allclose(moments.covariance, np.cov(rows, rowvar=False), rtol=1e-9)


def test_accumulate_streams_what_the_metrics_need():
    rng = np.random.RandomState(1)
    images = rng.uniform(-1, 1, (70, 16, 16, 3)).astype(np.float32)
    labels = rng.randint(0, 3, 70)
    labels[::12] = 3  # a class of 5 images (fewer than pool_3's 12 dimensions: kept as rows)
    classifier = CountingClassifier()
    batches = ((images[i:i + 16], labels[i:i + 16]) for i in range(0, 70, 16))
    stats = streaming.accumulate(batches, classifier, num_samples=60, keep=25, per_class=True, progress=False)
    assert stats.count == 60 and classifier.seen == 60  # stops at num_samples, mid-batch
    full = classifier(images[:60])
    pool, logits = np.asarray(full["pool_3"], np.float64), full["logits"]
    np.testing.assert_allclose(stats.mean, pool.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.covariance, np.cov(pool, rowvar=False), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(stats.kept, pool[:25], rtol=1e-5)
    np.testing.assert_allclose(stats.logits, logits, rtol=1e-5)
    restored = streaming.Statistics.from_arrays(stats.to_arrays())
    for c in range(4):
        rows = pool[labels[:60] == c]
        moments = stats.class_moments[c]
        assert moments.count == len(rows) and (moments.factor is not None) == (c == 3), (c, moments.count)
        np.testing.assert_allclose(moments.mean, rows.mean(0), rtol=1e-5)
        for held in (moments, restored.class_moments[c]):  # the cache keeps what the metrics need
            np.testing.assert_allclose(held.covariance, np.cov(rows, rowvar=False), rtol=1e-4, atol=1e-9)
            assert (held.factor is None) == (moments.factor is None)


def test_compute_metrics_against_numpy():
    rng = np.random.RandomState(2)
    a, b = rng.randn(200, 8), rng.randn(150, 8) * 1.3 + 0.2
    logits = rng.randn(150, 5) * 2

    def stats(x, lg=None, labels=None):
        per_class = {c: metrics.Moments(int((labels == c).sum()), x[labels == c].mean(0),
                                        covariance=np.cov(x[labels == c], rowvar=False))
                     for c in (0, 1)} if labels is not None else {}
        return streaming.Statistics(len(x), x.mean(0), np.cov(x, rowvar=False), x, lg, per_class)

    la, lb = np.arange(200) % 2, np.arange(150) % 2
    results = evaluator.compute_metrics(stats(a, labels=la), stats(b, logits, lb), splits=5)
    sqrt = scipy.linalg.sqrtm(np.cov(a, rowvar=False) @ np.cov(b, rowvar=False)).real
    fid = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(np.cov(a, rowvar=False) + np.cov(b, rowvar=False) - 2 * sqrt)
    np.testing.assert_allclose(results["fid"], fid, rtol=1e-6)
    np.testing.assert_allclose(results["kid"], metrics.kernel_distance(a, b)[0], rtol=1e-9)
    np.testing.assert_allclose(results["is"], metrics.inception_score(logits, 5)[0], rtol=1e-9)
    per_class = [metrics.frechet_distance(a[la == c], b[lb == c]) for c in (0, 1)]
    np.testing.assert_allclose(results["intra_fid"], np.mean(per_class), rtol=1e-6)
    assert results["num_real"] == 200 and results["num_generated"] == 150


def _array_spec(images, labels, batch):
    source = sources.array_source(images, labels, num_classes=3, name="test-arrays")
    return build_input(source, resolution=16, global_batch_size=batch, random_flip=False, shuffle=False,
                       repeat=False, deterministic=True)


class ColourGenerator(tf.Module):
    """z [B, 3] -> 16x16 images of colour tanh(z), the label ignored; counts its traces."""

    dim_z = 3

    def __init__(self):
        super().__init__()
        self.traces = 0

    def __call__(self, z, y, training=False):
        self.traces += 1  # Python side effect: runs when a tf.function traces, not when it runs
        return tf.tile(tf.tanh(z)[:, None, None, :], [1, 16, 16, 1])


def test_evaluating_the_same_generator_again_does_not_trace_it_again(tmp_path):
    """Periodic evaluation samples the same networks at every point: one trace for all of them (a new
    tf.function per evaluation retraced the generator each time and logged TensorFlow's retracing warning)."""
    rng = np.random.RandomState(8)
    spec = _array_spec(rng.randint(0, 256, (30, 16, 16, 3)).astype(np.uint8), rng.randint(0, 3, 30), 10)
    judge = evaluator.Evaluator(num_samples=30, batch_size=10, classifier=CountingClassifier(), kid_samples=30,
                                splits=2, cache_dir=str(tmp_path), progress=False)
    generator, other = ColourGenerator(), ColourGenerator()
    first, again = judge.evaluate(generator, 3, spec), judge.evaluate(generator, 3, spec)
    assert again["fid"] == first["fid"] and generator.traces == 1
    judge.evaluate(other, 3, spec)
    assert other.traces == 1 and generator.traces == 1


def test_real_statistics_are_cached_and_keyed(tmp_path):
    rng = np.random.RandomState(4)
    images = rng.randint(0, 256, (40, 16, 16, 3)).astype(np.uint8)
    labels = rng.randint(0, 3, 40)
    classifier = CountingClassifier()
    first = evaluator.real_statistics(_array_spec(images, labels, 8), classifier, 32, cache_dir=tmp_path,
                                      progress=False)
    assert classifier.seen == 32 and not first.meta["cached"]
    again = evaluator.real_statistics(_array_spec(images, labels, 8), classifier, 32, cache_dir=tmp_path,
                                      progress=False)
    assert classifier.seen == 32 and again.meta["cached"]  # no classifier call: read from the npz
    np.testing.assert_array_equal(again.covariance, first.covariance)
    assert again.meta["source"] == "test-arrays" and again.meta["classifier"]["name"] == classifier.name
    changed = images.copy()
    changed[0] = 255 - changed[0]
    evaluator.real_statistics(_array_spec(changed, labels, 8), classifier, 32, cache_dir=tmp_path,
                              progress=False)
    assert classifier.seen == 64  # different data, different key: recomputed
    assert len(os.listdir(tmp_path / "real_stats")) == 2


def numpy_fid(a, b):
    sqrt = scipy.linalg.sqrtm(np.cov(a, rowvar=False) @ np.cov(b, rowvar=False)).real
    return np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(np.cov(a, rowvar=False) + np.cov(b, rowvar=False) - 2 * sqrt)


def numpy_inception_score(logits, splits):
    """The mean over splits of exp(mean KL(p(y|x) || p(y))), in numpy."""
    scores = []
    for part in np.array_split(logits, splits):
        p = scipy.special.softmax(part, axis=1)
        scores.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0, keepdims=True))), axis=1))))
    return np.mean(scores)


def test_savedmodel_classifier_with_tfgan_interface_gives_inception_score(tmp_path):
    """A local SavedModel with TF-GAN's Inception interface (the TF-Hub module's) loads and yields IS and FID
    equal to numpy's on the logits and features it must produce: images constant in each channel stay
    constant when resized to 299x299, so pool_3 (their spatial mean) is the channel values and the logits are
    known without running the classifier."""
    w = np.random.RandomState(5).randn(3, 7).astype(np.float32)

    class Module(tf.Module):
        def __init__(self):
            self.w = tf.Variable(w)

        @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
        def __call__(self, images):
            # in float64: a float32 sum of 299 x 299 values in a graph was off by 1e-3
            pooled = tf.cast(tf.reduce_mean(tf.cast(images, tf.float64), axis=[1, 2]), tf.float32)
            return {"pool_3": pooled, "logits": 4.0 * pooled @ self.w}

    tf.saved_model.save(Module(), str(tmp_path / "inception"))
    classifier = classifiers.get_classifier(str(tmp_path / "inception"))
    assert set(classifier.outputs) == {"pool_3", "logits"}
    rng = np.random.RandomState(6)
    colours, others = rng.uniform(-1, 1, (40, 3)), rng.uniform(-0.5, 1, (40, 3)) ** 2
    as_images = lambda c: np.tile(c[:, None, None, :], (1, 8, 8, 1)).astype(np.float32)  # noqa: E731
    stats = streaming.accumulate([(as_images(colours), None)], classifier, 40, progress=False)
    other = streaming.accumulate([(as_images(others), None)], classifier, 40, progress=False)
    assert stats.logits.shape == (40, 7) and stats.mean.shape == (3,)
    np.testing.assert_allclose(stats.logits, 4.0 * colours @ w, rtol=1e-4, atol=1e-5)
    results = evaluator.compute_metrics(other, stats, splits=4)
    expected_is = numpy_inception_score(4.0 * colours @ w, splits=4)
    assert 1.5 < expected_is < 7.0  # a non-trivial score to match
    np.testing.assert_allclose(results["is"], expected_is, rtol=1e-4)
    np.testing.assert_allclose(results["fid"], numpy_fid(others, colours), rtol=1e-4)
    grey = classifier(as_images(colours)[..., :1])  # one channel: replicated to RGB before the classifier
    np.testing.assert_allclose(grey["pool_3"], np.repeat(colours[:, :1], 3, axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(classifiers.ClassifierError, match="nope"):
        classifiers.get_classifier(str(tmp_path / "nope"))


def test_auto_classifier_without_hub_or_weights_names_both_fixes(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGAN_TF_INCEPTION_WEIGHTS", str(tmp_path / "missing.pt"))
    monkeypatch.delenv("SAGAN_TF_CLASSIFIER", raising=False)
    monkeypatch.setattr(classifiers, "INCEPTION_TFHUB", str(tmp_path / "unreachable-hub-module"))
    with pytest.raises(classifiers.ClassifierError, match="unreachable-hub-module.*missing.pt"):
        classifiers.get_classifier("auto")


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout)


@requires_weights
def test_train_with_periodic_evaluation_then_evaluate_entry_point(tiny_run, tiny_raw_evaluation, tmp_path):
    model_dir = tiny_run
    lines = (model_dir / "eval" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 2, 4]  # 0: the untrained generator
    assert all(np.isfinite(json.loads(line)["fid"]) for line in lines)
    # PeriodicEvaluation.compare_raw: the raw generator beside the EMA one at every point.
    last = json.loads(lines[-1])
    assert last["generator"] == "ema" and np.isfinite(last["raw"]["fid"]) and last["raw"]["fid"] != last["fid"]
    best = json.loads((model_dir / "eval" / "best.json").read_text())
    assert best["step"] in (2, 4)  # step 0 is logged, never kept as the best
    assert best["fid"] == min(json.loads(line)["fid"] for line in lines[1:])
    assert os.path.exists(best["checkpoint"] + ".index")
    assert any(name.startswith("events") for name in os.listdir(model_dir / "eval"))

    result = _run("sagan_tf.evaluate", f"--model_dir={model_dir}", "--checkpoint=best", "--num_samples=24",
                  "--batch_size=12", "--classifier=port", "--intra_fid")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FID" in result.stdout and "classifier img/s" in result.stdout
    output = json.loads((model_dir / "eval" / f"metrics-ckpt-{best['step']}.json").read_text())
    assert output["step"] == best["step"] and output["ema"] is True and output["num_generated"] == 24
    assert output["classifier"] == "fid_inception_2015_port"
    # The same generator (EMA restored), samples and cached real statistics: the FID seen in training.
    assert output["fid"] == pytest.approx(best["fid"], rel=1e-5)
    assert "intra_fid" in output  # 24 images over 10 classes: the classes with >= 2 on both sides
    assert output["ema_standing_batches"] == 0  # the run's setting: the averaged statistics

    # `evaluate --checkpoint=4 --generator=raw` (the shared tiny_raw_evaluation): the raw FID seen in training.
    raw = json.loads((model_dir / "eval" / "metrics-ckpt-4-raw.json").read_text())
    assert raw["ema"] is False and raw["fid"] == pytest.approx(last["raw"]["fid"], rel=1e-5)

    # `--ema_standing_batches=2`: the EMA generator's batch-norm statistics measured again, so another FID.
    result = _run("sagan_tf.evaluate", f"--model_dir={model_dir}", "--checkpoint=4", "--num_samples=24",
                  "--batch_size=12", "--classifier=port", "--ema_standing_batches=2")
    assert result.returncode == 0, result.stderr[-3000:]
    standing = json.loads((model_dir / "eval" / "metrics-ckpt-4-standing2.json").read_text())  # beside the plain one
    assert standing["ema"] is True and (standing["ema_standing_batches"], standing["ema_standing_batch_size"]) == (2, 64)
    assert np.isfinite(standing["fid"]) and standing["fid"] != pytest.approx(last["fid"], rel=1e-3)

    result = _run("sagan_tf.evaluate", f"--model_dir={model_dir}", "--checkpoint=7", "--classifier=port")
    assert result.returncode == 2 and "ckpt-7 does not exist" in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_resolution(tmp_path):
    from sagan_tf.evaluate import evaluate_model_dir
    from sagan_tf.checkpointing import CheckpointError as EvaluationError
    from sagan_tf.checkpointing import resolve as resolve_checkpoint

    with pytest.raises(EvaluationError, match="operative_config.gin does not exist"):
        evaluate_model_dir(str(tmp_path))
    with pytest.raises(EvaluationError, match="No checkpoint in"):
        resolve_checkpoint(str(tmp_path))
    with pytest.raises(EvaluationError, match="train.eval_every"):
        resolve_checkpoint(str(tmp_path), "best")
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.0))
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), 3)
    for step in (5, 9):
        manager.save(checkpoint_number=step)
    assert resolve_checkpoint(str(tmp_path)).endswith("ckpt-9")
    assert resolve_checkpoint(str(tmp_path), "5").endswith("ckpt-5")


def test_given_images_are_evaluated_like_a_generators(tmp_path):
    """Another implementation's samples (uint8 arrays, as in ../shared/reference) go through the same path:
    the real images themselves score FID ~0, noise far more; labels reach the per-class statistics."""
    rng = np.random.RandomState(5)
    images = rng.randint(0, 256, (60, 16, 16, 3)).astype(np.uint8)
    labels = np.arange(60) % 3
    spec = _array_spec(images, labels, 20)
    judge = evaluator.Evaluator(num_samples=60, batch_size=20, classifier=CountingClassifier(), kid_samples=60,
                                splits=2, intra_fid=True, cache_dir=str(tmp_path), progress=False)
    same = judge.evaluate_images(images, labels, 3, spec)
    noise_images = rng.randint(0, 256, (60, 16, 16, 3)).astype(np.uint8) // 4
    noise = judge.evaluate_images(noise_images, labels, 3, spec)
    assert same["num_generated"] == 60 and abs(same["fid"]) < 1e-6
    # The FID of the classifier's own features of both sets (pixels p as p / 127.5 - 1), computed in numpy.
    features = lambda x: np.asarray(judge.classifier(x.astype(np.float32) / 127.5 - 1.0)["pool_3"], np.float64)  # noqa: E731
    expected = numpy_fid(features(images), features(noise_images))
    assert expected > 1e-3
    np.testing.assert_allclose(noise["fid"], expected, rtol=1e-4)
    assert set(same["intra_fid_per_class"]) == {"0", "1", "2"} and abs(same["intra_fid"]) < 1e-6
    with pytest.raises(ValueError, match="uint8"):
        judge.evaluate_images(images.astype(np.float32), labels, 3, spec)


def test_periodic_evaluation_scores_a_mixed_precision_generator_through_a_float32_copy(tmp_path):
    """A bfloat16 run is evaluated in float32, as sagan_tf.evaluate rebuilds it: the copy computes in float32,
    holds the network's current weights (taken again at every call), and a float32 network is used as it is."""
    from sagan_tf.eval.periodic import PeriodicEvaluation
    from sagan_tf.models.generator import Generator

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = Generator(resolution=32, num_classes=3, base_channels=4, attention_resolutions=(16,))
        mixed.build()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    evaluation = PeriodicEvaluation(evaluator=None, input_spec=None)
    copy = evaluation.in_float32(mixed)
    assert mixed.compute_dtype == "bfloat16" and copy.compute_dtype == "float32"
    assert len(mixed.weights) == len(copy.weights)
    for a, b in zip(mixed.weights, copy.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    mixed.weights[0].assign(mixed.weights[0] + 1.0)
    assert evaluation.in_float32(mixed) is copy
    np.testing.assert_array_equal(copy.weights[0].numpy(), mixed.weights[0].numpy())
    assert evaluation.in_float32(copy) is copy

    # A call evaluates under the float32 policy (the classifier is built on first use) a float32 generator,
    # and puts the run's policy back.
    seen = []

    class Recorder:
        def evaluate(self, generator, num_classes, input_spec):
            seen.append((keras.mixed_precision.dtype_policy().name, generator.compute_dtype))
            return {"fid": 1.0}

    class Model:
        sampling_generator, generator, ema_generator, num_classes = mixed, mixed, None, 3

    evaluation = PeriodicEvaluation(evaluator=Recorder(), input_spec=None)
    evaluation.start(str(tmp_path), tf.train.Checkpoint(), chief=True)
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        evaluation(Model(), 2)
        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert seen == [("float32", "float32")]

    # With standing statistics (SAGAN.ema_standing_batches), the float32 copy measures its own, as the float32
    # model of `sagan_tf.evaluate` does, instead of taking those measured in bfloat16.
    from sagan_tf.models.sagan import standing_statistics

    moving = lambda network: [w.numpy() for w in network.weights if "moving" in w.path]  # noqa: E731
    scored = []

    class Keeper:
        def evaluate(self, generator, num_classes, input_spec):
            scored.append(moving(generator))
            synced_weights.append(generator.weights[0].numpy())
            return {"fid": 1.0}

    calls, synced_weights = [], []

    class StandingModel(Model):
        ema_generator, ema_standing_batches, ema_standing_batch_size = mixed, 2, 4

        def sync_ema_generator(self):  # the averaged weights arrive in the bfloat16 EMA generator
            calls.append("sync")
            mixed.weights[0].assign(mixed.weights[0] + 1.0)

        @property
        def sampling_generator(self):  # SAGAN's syncs and measures standing statistics on the bfloat16 generator
            calls.append("standing statistics in bfloat16")
            return mixed

    evaluation = PeriodicEvaluation(evaluator=Keeper(), input_spec=None)
    evaluation.start(str(tmp_path / "standing"), tf.train.Checkpoint(), chief=True)
    bfloat16_statistics = moving(mixed)
    evaluation(StandingModel(), 2)
    assert calls == ["sync"]  # synced first, then measured once, on the float32 copy only:
    for before, after in zip(bfloat16_statistics, moving(mixed)):
        np.testing.assert_array_equal(before, after)  # not on the bfloat16 generator
    np.testing.assert_array_equal(synced_weights[0], mixed.weights[0].numpy())  # the copy took the synced weights
    expected = PeriodicEvaluation(evaluator=None, input_spec=None).in_float32(mixed)
    standing_statistics(expected, 2, 4)
    assert len(scored) == 1 and len(scored[0]) >= 6
    for got, want, own in zip(scored[0], moving(expected), moving(mixed)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        assert not np.array_equal(got, own)
