"""The no-training baselines of an experiment list, evaluated as the runs are: `untrained` (the first
run's generator at initialisation) and `pixel_gaussian` (independent per-class per-pixel Gaussians
fitted to the real images). `python -m lab.experiments.baselines --spec=... --out_dir=...
--baseline=NAME` evaluates one in its own process (the runner calls it so)."""

import os
import sys

from absl import app, flags

from lab.experiments.spec import SpecError, load_spec, write_json


class PixelGaussian:
    """Per-class independent Gaussians over pixels, fitted to real images: a no-training baseline.

    Called like a generator: z [B, R * R * C] standard normal, labels [B] -> images [B, R, R, C],
    mean + std * z per pixel of the label's class, clipped to [-1, 1].
    """

    def __init__(self, mean, std):
        import tensorflow as tf

        self.mean, self.std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)  # [K, R, R, C]
        self.dim_z = int(mean[0].size)

    @classmethod
    def fit(cls, batches, num_classes, limit):
        """Per-class pixel mean and std of up to `limit` images from (images, labels) batches."""
        import numpy as np

        sums, squares, counts, seen = None, None, np.zeros(max(num_classes, 1)), 0
        for images, labels in batches:
            images = images.astype(np.float64)
            labels = labels if num_classes else np.zeros(len(images), np.int64)
            if sums is None:
                sums = np.zeros((len(counts), *images.shape[1:]))
                squares = np.zeros_like(sums)
            np.add.at(sums, labels, images)
            np.add.at(squares, labels, images ** 2)
            counts += np.bincount(labels, minlength=len(counts))
            seen += len(images)
            if seen >= limit:
                break
        shape = (-1,) + (1,) * (sums.ndim - 1)
        mean = sums / np.maximum(counts, 1).reshape(shape)
        std = np.sqrt(np.maximum(squares / np.maximum(counts, 1).reshape(shape) - mean ** 2, 0))
        return cls(mean, std)

    def __call__(self, z, labels=None, training=False):
        import tensorflow as tf

        labels = tf.zeros([tf.shape(z)[0]], tf.int32) if labels is None else labels
        mean, std = tf.gather(self.mean, labels), tf.gather(self.std, labels)
        return tf.clip_by_value(mean + std * tf.reshape(z, tf.shape(mean)), -1.0, 1.0)


def evaluate_baseline(spec, name):
    """In this process: builds the baseline `name` and returns its metrics."""
    from sagan_tf import config, gin_registry  # noqa: F401, PLC0415  (gin_registry: every configurable)
    from sagan_tf.eval import evaluator as evaluator_lib  # noqa: PLC0415
    from sagan_tf.eval.periodic import evaluation_input  # noqa: PLC0415
    from sagan_tf.models.factory import DataFacts, build_model  # noqa: PLC0415

    run = spec["runs"][0]
    config.parse([*spec["gin_files"], *run.get("gin_files", [])],
                 [*spec.get("gin_params", []), *run.get("gin_params", []), f"train.seed = {spec['seeds'][0]}"])
    evaluation = spec.get("evaluation", {})
    evaluator = evaluator_lib.Evaluator(num_samples=evaluation.get("num_samples", 10000),
                                        classifier=evaluation.get("classifier", "port"),
                                        intra_fid=evaluation.get("intra_fid", False))
    input_spec = evaluation_input(evaluator.batch_size)
    facts = DataFacts.of(input_spec)
    if name == "untrained":
        generator = build_model(facts).sampling_generator
    else:
        generator = PixelGaussian.fit(evaluator_lib.dataset_batches(input_spec), facts.num_classes,
                                      evaluator.num_samples)
    results = evaluator.evaluate(generator, facts.num_classes, input_spec)
    results["baseline"] = name
    return results



def main(argv):
    del argv
    FLAGS = flags.FLAGS
    try:
        spec = load_spec(FLAGS.spec)
    except SpecError as error:
        print(f"lab.experiments.baselines: error: {error}", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("SAGAN_TF_CACHE", os.path.join(os.path.abspath(FLAGS.out_dir), "cache"))
    os.makedirs(os.path.join(FLAGS.out_dir, "baselines"), exist_ok=True)
    write_json(os.path.join(FLAGS.out_dir, "baselines", f"{FLAGS.baseline}.json"), evaluate_baseline(spec, FLAGS.baseline))


if __name__ == "__main__":
    flags.DEFINE_string("spec", None, "The experiment list (JSON).")
    flags.DEFINE_string("out_dir", None, "The list's output directory (the result goes to OUT_DIR/baselines/).")
    flags.DEFINE_enum("baseline", None, ["untrained", "pixel_gaussian"], "The baseline to evaluate.")
    flags.mark_flags_as_required(["spec", "out_dir", "baseline"])
    app.run(main)
