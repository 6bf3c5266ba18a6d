"""Image grids from a trained generator: per class, for chosen classes, or interpolations between z's.
The command is tools/sample.py (the experiment runner calls `python -m lab.sampling`, the same):

    python tools/sample.py --model_dir=runs/default --output=grid.png [--classes=0,3] [--per_class=8]
    python tools/sample.py --saved_model=export/1500 --output=grid.png --interpolate --steps=8

The generator comes from a run's checkpoint (`--model_dir`, `--checkpoint`; its EMA copy when
training kept one) or from a SavedModel written by `python -m sagan_tf.export` (`--saved_model`,
called through its `serving_default` signature). Conditional models: one row per class.
`--interpolate`: each row walks from one z to another (spherical interpolation) in `--steps` columns,
with the row's class fixed. `--truncation=T` draws z from the normal truncated to [-T, T] (the truncation trick,
`sagan_tf.serving.truncated_normal`, as the exported `sample` signature does).
"""

import json
import os

from absl import flags

from lab import checks
from sagan_tf import commands, logs  # (no TensorFlow)

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model_dir", None, "A training directory.")
    flags.DEFINE_string("checkpoint", None, "With --model_dir: a step, 'best' or a path; default: the latest.")
    flags.DEFINE_string("saved_model", None, "An exported version directory (EXPORT_DIR/<version>).")
    flags.DEFINE_string("output", None, "The PNG to write (default: MODEL_DIR/grid.png, or grid-<version>.png beside a SavedModel).")
    flags.DEFINE_list("classes", None, "Class ids, one row each (default: every class; unconditional: 8 rows).")
    flags.DEFINE_integer("per_class", 8, "Images per row.", lower_bound=1)
    flags.DEFINE_bool("interpolate", False, "Rows interpolate between two z's instead of independent samples.")
    flags.DEFINE_integer("steps", 8, "Columns of an interpolation.", lower_bound=2)
    flags.DEFINE_float("truncation", 0.0, "Draw z from the normal truncated to [-T, T]; 0: no truncation.",
                       lower_bound=0.0)
    flags.DEFINE_integer("seed", 0, "z seed.")
    flags.DEFINE_integer("min_tile", 96, "Enlarge small images (nearest neighbour) to at least this many pixels.",
                         lower_bound=1)


def check_flags():
    """The flags' checks that need no TensorFlow; returns the class ids of --classes (or None)."""
    if (FLAGS.model_dir is None) == (FLAGS.saved_model is None):
        raise commands.UserError("pass exactly one of --model_dir and --saved_model",
                                 "--model_dir=a training run, or --saved_model=EXPORT_DIR/<version>")
    if FLAGS.model_dir is not None:
        checks.run_folder("model_dir", FLAGS.model_dir)
    else:
        checks.folder("saved_model", FLAGS.saved_model, "pass a version folder written by sagan_tf.export")
        if not os.path.isfile(os.path.join(FLAGS.saved_model, "assets", "sagan_tf_export.json")):
            raise commands.UserError(f"--saved_model {FLAGS.saved_model} holds no assets/sagan_tf_export.json",
                                     "pass EXPORT_DIR/<version>, a folder written by sagan_tf.export")
    if FLAGS.output:
        checks.output_file("output", FLAGS.output, "pass a .png file path")
    if not FLAGS.classes:
        return None
    classes = checks.integers("classes", FLAGS.classes, "pass class ids such as --classes=0,3")
    if min(classes) < 0:
        raise commands.UserError(f"--classes {min(classes)} is negative", "pass class ids from 0")
    return classes


def slerp(a, b, t):
    """Spherical interpolation between rows a and b [D] at fractions t [S] -> [S, D]."""
    import numpy as np

    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return np.outer(1 - t, a) + np.outer(t, b)
    return (np.outer(np.sin((1 - t) * omega), a) + np.outer(np.sin(t * omega), b)) / np.sin(omega)


def load_sampler(model_dir=None, checkpoint=None, saved_model=None):
    """(images(z, labels) -> uint8 [N, H, W, 3], num_classes, dim_z) from a run or a SavedModel."""
    import tensorflow as tf

    if (model_dir is None) == (saved_model is None):
        raise commands.UserError("pass exactly one of --model_dir and --saved_model")
    if saved_model:
        with open(os.path.join(saved_model, "assets", "sagan_tf_export.json")) as f:
            description = json.load(f)
        serve = tf.saved_model.load(saved_model).signatures["serving_default"]
        num_classes, dim_z = description["num_classes"], description["dim_z"]
    else:
        from sagan_tf import restore, serving

        run = restore.load_run(model_dir, checkpoint)
        module = serving.GeneratorModule(run.model.sampling_generator, run.model.num_classes)
        serve, num_classes, dim_z = module.serve, module.num_classes, module.dim_z

    def images(z, labels):
        inputs = {"z": tf.constant(z)}
        if num_classes:
            inputs["labels"] = tf.constant(labels, tf.int32)
        try:
            return serve(**inputs)["images"].numpy()
        except tf.errors.InvalidArgumentError as error:  # the signature's own checks: say why first
            from sagan_tf.serving import error_reason

            raise commands.UserError(error_reason(error)) from None

    return images, num_classes, dim_z


def main(argv):
    del argv
    classes = check_flags()
    logs.quiet_libraries()
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from sagan_tf.images import labelled_grid  # noqa: PLC0415

    images, num_classes, dim_z = load_sampler(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.saved_model)
    if classes:
        rows = classes
        bad = [c for c in rows if c >= max(num_classes, 1)]
        if bad:
            known = f"classes 0-{num_classes - 1}" if num_classes else "no classes (unconditional)"
            raise commands.UserError(f"--classes {','.join(map(str, bad))}: the model has {known}",
                                     f"pass ids from 0 to {max(num_classes, 1) - 1}, or leave --classes out")
    else:
        rows = list(range(num_classes)) if num_classes else [0] * 8
    from sagan_tf.serving import truncated_normal
    columns = FLAGS.steps if FLAGS.interpolate else FLAGS.per_class
    grid_rows = []
    for row, label in enumerate(rows):
        draw = truncated_normal((2 if FLAGS.interpolate else columns, dim_z), (FLAGS.seed, row), FLAGS.truncation).numpy()
        if FLAGS.interpolate:
            z = slerp(draw[0], draw[1], np.linspace(0.0, 1.0, columns)).astype(np.float32)
        else:
            z = draw
        grid_rows.append(images(z, np.full([columns], label, np.int32)))
    names = [f"class {label}" if num_classes else "" for label in rows]
    grid = labelled_grid(np.concatenate(grid_rows), names, min_tile=FLAGS.min_tile)
    output = FLAGS.output or (os.path.join(FLAGS.model_dir, "grid.png") if FLAGS.model_dir else os.path.join(
        os.path.dirname(os.path.normpath(FLAGS.saved_model)), f"grid-{os.path.basename(os.path.normpath(FLAGS.saved_model))}.png"))
    tf.io.write_file(output, tf.io.encode_png(grid))
    print(f"Wrote {output}: {len(rows)} rows x {columns} columns of {grid_rows[0].shape[1]}px images"
          f" (shown at {grid.shape[0] // len(rows)}px, each row labelled with its class).")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/sample.py", main, __doc__)
