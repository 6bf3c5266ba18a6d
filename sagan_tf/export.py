"""Exports a run's generator for TF Serving: `python -m sagan_tf.export --model_dir=DIR --export_dir=OUT`.

Writes the EMA generator (the plain one when training kept no EMA) of the latest checkpoint
(`--checkpoint=STEP`, `best` or a path) as a SavedModel in TF Serving's layout `OUT/<version>/`,
version = the checkpoint's step unless `--version` says otherwise. Signatures: `serving_default`
(z, labels -> uint8 images), `sample` (seed, count, labels, truncation -> images, labels, z) and
`sample_png` (-> PNG bytes); see `sagan_tf.serving`. The SavedModel needs only TensorFlow to load.
TF Serving's warmup requests go to `OUT/<version>/assets.extra/` (model name: OUT's last folder); they
are built with tensorflow-serving-api's protos, a dependency of this command.
"""

import importlib.util
import json
import os

from absl import flags

from sagan_tf import commands, logs  # no TensorFlow

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined when run as a command, so that importing the module defines none)."""
    flags.DEFINE_string("model_dir", None, "A training directory (operative_config.gin, checkpoints/).")
    flags.DEFINE_string("export_dir", None, "TF Serving's model base path; the version goes in a sub-folder.")
    flags.DEFINE_string("checkpoint", None, "A step number, 'best' or a checkpoint path; default: the latest.")
    flags.DEFINE_integer("version", None, "The version folder (default: the checkpoint's step).", lower_bound=0)
    flags.mark_flags_as_required(["model_dir", "export_dir"])


def export_run(model_dir, export_dir, checkpoint=None, version=None):
    """Restores a run and exports its sampling generator; returns (path, description dict)."""
    from sagan_tf import restore, serving  # noqa: PLC0415
    from sagan_tf.models.common import count_parameters  # noqa: PLC0415

    run = restore.load_run(model_dir, checkpoint)
    version = run.step if version is None else version
    if version is None:
        raise restore.RestoreError(f"Cannot tell a step from {run.checkpoint}: pass --version.")
    generator = run.model.sampling_generator
    description = {
        "checkpoint": run.checkpoint,
        "step": run.step,
        "ema": run.model.ema_generator is not None,
        "num_classes": run.model.num_classes,
        "dim_z": int(generator.dim_z),
        "resolution": int(generator.resolution),
        "channels_in_model": run.facts.channels,
        "base_channels": int(generator.base_channels),  # the network's width (ch), as its config set it
        "generator_parameters": count_parameters(generator.trainable_weights),
        "signatures": ["serving_default", "sample", "sample_png"],
        "warmup_requests": [f"{name} x{size}" for name in serving.WARMUP_SIGNATURES
                            for size in serving.WARMUP_BATCH_SIZES],
    }
    path = serving.export_generator(generator, run.model.num_classes, export_dir, version, description)
    return path, description


def main(argv):
    del argv  # commands.run rejects stray arguments
    if os.path.exists(FLAGS.export_dir) and not os.path.isdir(FLAGS.export_dir):
        raise commands.UserError(f"--export_dir {FLAGS.export_dir} is a file, not a folder",
                                 "pass a folder for TF Serving's model base path")
    commands.check_run_dir(FLAGS.model_dir, FLAGS.checkpoint)
    if importlib.util.find_spec("tensorflow_serving") is None:  # the warmup records' protos
        raise commands.UserError("tensorflow-serving-api is not installed",
                                 "pip install --no-deps tensorflow-serving-api==2.21.0, as requirements.txt pins it")
    logs.quiet_libraries()
    try:
        path, description = export_run(FLAGS.model_dir, FLAGS.export_dir, FLAGS.checkpoint, FLAGS.version)
    except FileExistsError as error:
        raise commands.UserError(str(error), "pass another --version, or remove that folder") from None
    print(json.dumps(description, indent=2))
    print(f"Exported {path}")


if __name__ == "__main__":
    define_flags()
    commands.run("sagan_tf.export", main, __doc__)
