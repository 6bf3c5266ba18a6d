"""Evaluates a trained generator: `python -m sagan_tf.evaluate --model_dir=DIR [--num_samples=50000]`.

Rebuilds the model from `DIR/model_config.json` (older runs: `operative_config.gin`), restores the latest (or `--checkpoint`) training
checkpoint, samples from the EMA generator when training kept one, and prints FID, KID, IS (when
the classifier has logits) and intra-class FID (`--intra_fid`) against the training data (or the
source bound to `evaluation_input.source`). Results go to `DIR/eval/metrics-<checkpoint>.json`
(`--generator=raw`: the trained weights, not their EMA; `...-raw.json`). `--ema_standing_batches=N` measures the
EMA generator's batch-norm statistics again on its averaged weights (`SAGAN.ema_standing_batches`).
Real statistics are cached (`--cache_dir`, default $SAGAN_TF_CACHE or ~/.cache/sagan_tf).
"""

import os

from absl import flags

from sagan_tf import commands, logs, machine, records  # no TensorFlow

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined when run as a command, so that importing the module defines none)."""
    flags.DEFINE_string("model_dir", None, "A training directory (operative_config.gin, checkpoints/).")
    flags.DEFINE_string("checkpoint", None, "A checkpoint path, a step number, or 'best'; default: the latest.")
    flags.DEFINE_integer("num_samples", 50_000, "Generated images (and real images, at most the dataset's).",
                         lower_bound=2)
    flags.DEFINE_integer("batch_size", 100, "Images per generator / classifier call.", lower_bound=1)
    flags.DEFINE_string("classifier", None, "'auto' (default), 'tfgan', 'port', a TF-Hub handle or SavedModel dir.")
    flags.DEFINE_bool("intra_fid", False, "Also FID per class and its mean (conditional models).")
    flags.DEFINE_string("cache_dir", None, "Real-statistics cache directory.")
    flags.DEFINE_string("output", None, "JSON output path (default DIR/eval/metrics-<checkpoint>.json).")
    flags.DEFINE_integer("seed", 0, "Seed of the generated z and labels.")
    flags.DEFINE_enum("generator", "auto", ["auto", "ema", "raw"],
                      "auto: the EMA generator when training kept one; ema: that one (error without); raw: the "
                      "trained weights themselves.")
    flags.DEFINE_integer("ema_standing_batches", None,
                         "The EMA generator's batch-norm statistics measured again on its averaged weights over this "
                         "many training-mode batches (SAGAN.ema_standing_batches); 0: the averaged statistics; "
                         "default: the run's setting.", lower_bound=0)
    flags.DEFINE_enum("onednn", "auto", ["auto", "on", "off"], machine.ONEDNN_HELP)
    flags.DEFINE_multi_string("gin_file", [], "Extra gin files, applied after the run's operative config.")
    flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings, e.g. \"evaluation_input.source = ...\".")
    flags.mark_flag_as_required("model_dir")


def evaluate_model_dir(model_dir, checkpoint=None, gin_files=(), gin_params=(), generator="auto",
                       ema_standing_batches=None, **evaluator_args):
    """Restores a training run's generator and evaluates it; returns the results dict.

    The networks come from the run's stored Keras config (`ema_standing_batches`, if given, replaces its
    `SAGAN.ema_standing_batches`); the real images from its operative gin config (its data bindings) plus
    `gin_files` and `gin_params` (e.g. another `evaluation_input.source`)."""
    from sagan_tf import restore  # noqa: PLC0415
    from sagan_tf.eval.evaluator import Evaluator  # noqa: PLC0415
    from sagan_tf.eval.periodic import evaluation_input  # noqa: PLC0415

    run = restore.load_run(model_dir, checkpoint)
    if generator == "ema" and run.model.ema_generator is None:
        raise restore.RestoreError(f"{model_dir} kept no EMA generator (SAGAN.ema_decay was None): use --generator=raw.")
    if ema_standing_batches is not None:
        if generator == "raw" or run.model.ema_generator is None:
            raise restore.RestoreError(f"ema_standing_batches is a setting of the EMA generator, which "
                                       f"{'generator=raw does not evaluate' if generator == 'raw' else model_dir + ' did not keep'}.")
        run.model.ema_standing_batches = ema_standing_batches
    network = run.model.generator if generator == "raw" else run.model.sampling_generator
    restore.parse_run_config(model_dir, gin_files, gin_params)
    evaluator = Evaluator(**{k: v for k, v in evaluator_args.items() if v is not None})
    input_spec = evaluation_input(evaluator.batch_size)
    results = evaluator.evaluate(network, run.model.num_classes, input_spec)
    results.update(checkpoint=run.checkpoint, step=run.step, ema=network is run.model.ema_generator)
    if results["ema"]:
        results.update(ema_standing_batches=run.model.ema_standing_batches,
                       ema_standing_batch_size=run.model.ema_standing_batch_size)
    return results


def main(argv):
    del argv  # commands.run rejects stray arguments
    commands.check_run_dir(FLAGS.model_dir, FLAGS.checkpoint)  # before TensorFlow: bad input fails in a second
    output = FLAGS.output
    if output and os.path.isdir(output):
        raise commands.UserError(f"--output {output} is a folder", "pass a .json file path")
    if FLAGS.ema_standing_batches is not None and FLAGS.generator == "raw":
        raise commands.UserError("--ema_standing_batches is a setting of the EMA generator, which --generator=raw "
                                 "does not evaluate", "drop one of the two flags")
    machine.set_onednn(FLAGS.onednn)  # before TensorFlow starts
    logs.quiet_libraries()
    from sagan_tf.eval.evaluator import format_table  # noqa: PLC0415

    results = evaluate_model_dir(
        FLAGS.model_dir, FLAGS.checkpoint, FLAGS.gin_file, FLAGS.gin_param, FLAGS.generator,
        FLAGS.ema_standing_batches, num_samples=FLAGS.num_samples, batch_size=FLAGS.batch_size, classifier=FLAGS.classifier,
        intra_fid=FLAGS.intra_fid, cache_dir=FLAGS.cache_dir, seed=FLAGS.seed,
    )
    output = output or os.path.join(
        FLAGS.model_dir, "eval",
        f"metrics-{os.path.basename(results['checkpoint'])}{'-raw' if FLAGS.generator == 'raw' else ''}"
        f"{f'-standing{FLAGS.ema_standing_batches}' if FLAGS.ema_standing_batches is not None else ''}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    records.write_json(output, results)
    if results.get("classifier_note"):
        print(f"Classifier: {results['classifier_note']}")
    print(format_table(results))
    print(f"Wrote {output}")


if __name__ == "__main__":
    define_flags()
    commands.run("sagan_tf.evaluate", main, __doc__)
