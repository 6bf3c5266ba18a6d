"""Per-class shape identity of a run on the synthetic dataset, with the real data's score beside it.

    .venv/bin/python tools/shape_score.py --model_dir=runs/default [--per_class=100] [--generator=raw] [--json=OUT]

Samples `--per_class` images of every class from the run's sampling generator (the EMA one when kept) and
as many real images, and scores both with `sagan_tf.eval.shapes.class_identity`: the fraction of images
that show their class's shape in its colour family. Prints one row per class.
"""

import json
import os

from absl import flags

from lab import checks, records
from sagan_tf import commands, logs  # (no TensorFlow)


def define_flags():
    flags.DEFINE_string("model_dir", None, "A training directory of a synthetic-data run.")
    flags.DEFINE_string("checkpoint", None, "A step, 'best' or a path; default: the latest.")
    flags.DEFINE_integer("per_class", 100, "Generated (and real) images per class.", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Seed of z.")
    flags.DEFINE_string("json", None, "Also write the scores here.")
    flags.DEFINE_enum("generator", "auto", ["auto", "raw"],
                      "auto: the EMA generator when training kept one; raw: the trained weights (as evaluate's flag).")
    flags.mark_flag_as_required("model_dir")


def real_images(num_classes, per_class, resolution, seed=0, shape_size=1.0):
    """`per_class` real images of every class of the synthetic dataset (its first ones)."""
    import numpy as np  # noqa: PLC0415

    from sagan_tf.data import synthetic  # noqa: PLC0415

    images, labels, counts, index = [], [], np.zeros(num_classes, int), 0
    while counts.min() < per_class:
        image, label = synthetic.example(index, seed, num_classes, resolution, shape_size)
        label = int(label)
        if counts[label] < per_class:
            images.append(image.numpy())
            labels.append(label)
            counts[label] += 1
        index += 1
    return np.stack(images), np.array(labels)


def check_flags(flags_values):
    """The checks that need no TensorFlow: a run folder of a run on the synthetic data, a JSON path."""
    checks.run_folder("model_dir", flags_values.model_dir)
    if flags_values.json:
        checks.output_file("json", flags_values.json, "pass a .json file path")
    facts = os.path.join(flags_values.model_dir, "model.json")  # sagan_tf.restore's data facts
    if os.path.isfile(facts):
        with open(facts) as f:
            source = json.load(f).get("source_name", "")
        if not source.startswith("synthetic"):
            raise commands.UserError(f"{flags_values.model_dir} was not trained on the synthetic dataset "
                                     f"(data {source!r})", "pass a run trained with --gin_file=synthetic.gin")


def main(argv):
    del argv
    check_flags(flags.FLAGS)
    logs.quiet_libraries()
    import gin  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from sagan_tf import restore  # noqa: PLC0415
    from sagan_tf.config import is_bound  # noqa: PLC0415
    from sagan_tf.eval.shapes import class_identity  # noqa: PLC0415

    FLAGS = flags.FLAGS
    run = restore.load_run(FLAGS.model_dir, FLAGS.checkpoint)
    facts = run.facts
    if facts.channels != 3 or not facts.num_classes or not facts.source_name.startswith("synthetic"):
        raise commands.UserError(f"{FLAGS.model_dir} was not trained on the synthetic dataset "
                                 f"(data {facts.source_name!r})", "pass a run trained with --gin_file=synthetic.gin")
    labels = np.repeat(np.arange(facts.num_classes), FLAGS.per_class).astype(np.int32)
    z = np.random.RandomState(FLAGS.seed).randn(len(labels), run.model.generator.dim_z).astype(np.float32)
    generator = run.model.generator if FLAGS.generator == "raw" else run.model.sampling_generator
    fake = np.concatenate([generator(z[i:i + 200], labels[i:i + 200], training=False).numpy()
                           for i in range(0, len(labels), 200)])
    restore.parse_run_config(FLAGS.model_dir)  # the run's data bindings: its seed and shape size
    bound = lambda name, default: gin.query_parameter(name) if is_bound(name) else default  # noqa: E731
    real, real_labels = real_images(facts.num_classes, FLAGS.per_class, facts.resolution,
                                    bound("synthetic_source.seed", 0), bound("synthetic_source.shape_size", 1.0))
    generated, data = class_identity(fake, labels, facts.num_classes), class_identity(real, real_labels, facts.num_classes)
    which = "raw" if FLAGS.generator == "raw" or generator is run.model.generator else "EMA"
    print(f"Shape identity, {FLAGS.per_class} images per class, step {run.step} ({run.checkpoint}), {which} generator")
    print(f"{'class':<8}{'generated':>10}{'real':>8}")
    for k in range(facts.num_classes):
        print(f"{k:<8}{generated['per_class'][k]:>10.2f}{data['per_class'][k]:>8.2f}")
    print(f"{'all':<8}{generated['score']:>10.3f}{data['score']:>8.3f}   (right shape {generated['shape']:.3f}, "
          f"right colour family {generated['colour']:.3f}; worst class {min(generated['per_class']):.2f})")
    if FLAGS.json:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
        records.write(FLAGS.json, {"step": run.step, "checkpoint": run.checkpoint, "generator": which,
                                   "generated": generated, "real": data})
        print(f"Wrote {FLAGS.json}")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/shape_score.py", main, __doc__)
