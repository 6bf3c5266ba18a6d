"""Runs an experiment list (see `lab.experiments`): trains, evaluates, draws and reports.

    .venv/bin/python tools/run_experiments.py --spec=tools/experiments/fashion_mnist_ablations.json \
        --out_dir=results/fashion_mnist_ablations

Resumable: every stage is skipped when its output exists; stop it with SIGTERM or Ctrl-C (training
saves a checkpoint first). `--report_only` rewrites results.md/json and the curve from what exists.
"""

import os

from absl import flags

from lab import checks
from sagan_tf import commands, logs  # (no TensorFlow)

flags.DEFINE_string("spec", None, "The experiment list (JSON).")
flags.DEFINE_string("out_dir", None, "Where the runs, evaluations, grids and the results go.")
flags.DEFINE_bool("report_only", False, "Only rewrite results.md/json and the curve from finished stages.")
flags.mark_flags_as_required(["spec", "out_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    fix = "pass an experiment list such as tools/experiments/fashion_mnist_ablations.json"
    checks.json_file("spec", FLAGS.spec, fix)
    checks.output_folder("out_dir", FLAGS.out_dir, "pass a folder for the runs and the results")
    logs.quiet_libraries()
    from lab import experiments  # noqa: PLC0415  (TensorFlow starts here)

    try:
        spec = experiments.load_spec(FLAGS.spec)
    except experiments.SpecError as error:
        raise commands.UserError(str(error), "see tools/experiments/*.json for the format") from None
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    os.environ.setdefault("SAGAN_TF_CACHE", os.path.join(os.path.abspath(FLAGS.out_dir), "cache"))
    if FLAGS.report_only:
        results = experiments.report(spec, FLAGS.out_dir)
    else:
        experiments.stop_on_sigterm()
        results = experiments.run_list(spec, FLAGS.spec, FLAGS.out_dir)
    print(experiments.markdown(results))
    print(f"Wrote {os.path.join(FLAGS.out_dir, 'results.md')}")


if __name__ == "__main__":
    commands.run("tools/run_experiments.py", main, __doc__)
