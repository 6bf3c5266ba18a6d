"""Trains SAGAN: `python -m sagan_tf.train --gin_file=imagenet.gin --model_dir=DIR`.

Flags choose the gin files, extra bindings, the output directory and the strategy; everything
else is gin (`gin/*.gin`). A rerun with the same --model_dir resumes from its latest checkpoint.
"""

import os
import sys

from absl import flags

# No TensorFlow in these: set_onednn must run before TensorFlow starts, and bad input fails before it does.
from sagan_tf import commands, distribute, gin_files, logs, machine

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined when run as a command, so that importing the module defines none)."""
    flags.DEFINE_multi_string("gin_file", [], "gin files: a path, or a name in the packaged gin/ folder.")
    flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings, e.g. 'train.num_steps = 100'.")
    flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard events, samples, operative config.")
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"], "tf.distribute strategy.")
    flags.DEFINE_integer("num_cpu_devices", 0, "Logical CPU devices for --strategy=mirrored without GPUs.")
    flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")
    flags.DEFINE_integer("seed", None, "Run seed: initial weights, z, data order and flips (gin: train.seed, default 0).")
    flags.DEFINE_enum("onednn", "auto", ["auto", "on", "off"],
                      machine.ONEDNN_HELP)
    flags.DEFINE_enum("precision", None, list(machine.PRECISIONS), machine.PRECISION_HELP)
    flags.DEFINE_enum("filter_gradient", "auto", machine.FILTER_GRADIENT_MODES, machine.FILTER_GRADIENT_HELP)
    flags.DEFINE_bool("release_start_up_pages", True,
                      "Linux: after the imports and after the first step, unmap the clean pages of the shared "
                      "libraries that start-up touched (a page used again is faulted back in from the page cache "
                      "or its file), so that they leave the process's resident set (sagan_tf.memory).")
    flags.mark_flag_as_required("model_dir")


def start_up_pages_actions(release):
    """With `release`: unmaps the library pages that the imports touched now (sagan_tf.memory) and returns the
    action that does it again after the first step; else nothing."""
    if not release:
        return []
    from sagan_tf import actions, memory  # noqa: PLC0415  (TensorFlow: after flag parsing)

    memory.release_library_pages()
    return [actions.ReleaseLibraryPages()]


def main(argv):
    del argv  # commands.run rejects stray arguments
    if os.path.exists(FLAGS.model_dir) and not os.path.isdir(FLAGS.model_dir):  # before TensorFlow: fails fast
        raise commands.UserError(f"--model_dir {FLAGS.model_dir} is a file, not a folder",
                                 "pass a new or existing run folder")
    if not FLAGS.gin_file:
        configs = [name for name in gin_files.packaged_gin_names() if "/" not in name and name != "base.gin"]
        raise commands.UserError("no --gin_file: a run needs a config (its data and networks)",
                                 f"pass e.g. --gin_file=synthetic.gin, the README's default run; the shipped configs: "
                                 f"{', '.join(configs)}")
    for name in FLAGS.gin_file:
        gin_files.resolve_gin_file(name)
    distribute.check_environment(FLAGS.strategy)
    onednn_source = machine.set_onednn(FLAGS.onednn)  # before TensorFlow is imported: it reads the variable once
    logs.quiet_libraries()
    from sagan_tf import config, gin_registry, trainer  # noqa: F401  (after flag parsing: TF is slow)
    from sagan_tf.eval.periodic import PeriodicEvaluation

    extra_actions = start_up_pages_actions(FLAGS.release_start_up_pages)
    try:
        seed = [] if FLAGS.seed is None else [f"train.seed = {FLAGS.seed}"]
        if FLAGS.precision:
            seed.append(machine.precision_binding(FLAGS.precision))
        paths = config.parse(FLAGS.gin_file, FLAGS.gin_param + seed)  # raises before model_dir is touched
        print(f"sagan_tf.train: config {', '.join(paths) or '(none)'}"
              + (f" and {len(FLAGS.gin_param + seed)} binding(s)" if FLAGS.gin_param + seed else ""), flush=True)
        strategy = distribute.get_strategy(FLAGS.strategy, FLAGS.num_cpu_devices, FLAGS.tpu)
        networks = trainer.apply_hardware_policy(strategy, FLAGS.filter_gradient)  # before the model is built
        print(f"sagan_tf.train: {trainer.hardware_line(onednn_source)}; {networks.describe()}", flush=True)
        settings = trainer.TrainConfig()  # builds the input (data errors) before model_dir is made
        evaluation = PeriodicEvaluation.from_gin() if settings.eval_every else None
        trainer.train(FLAGS.model_dir, strategy, settings, evaluation, extra_actions)
    except trainer.DivergedError as error:
        print(f"sagan_tf.train: error: {error}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    define_flags()
    commands.run("sagan_tf.train", main, __doc__)
