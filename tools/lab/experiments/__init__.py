"""Experiment lists: trains a list of gin configs for a fixed step budget, evaluates each, and writes a results table.

    .venv/bin/python tools/run_experiments.py --spec=tools/experiments/fashion_mnist_ablations.json \
        --out_dir=results/fashion_mnist_ablations

The spec (JSON) names the shared gin files and bindings (`gin_files`, `gin_params`), the step budget,
the seeds, the evaluation (samples, classifier), the runs (name, title, extra gin files and bindings,
applied after the list's, and optionally their own `num_steps`, for runs that spend one CPU budget on
another number of steps, such as a smaller batch for more steps, and their own `seeds`, for a change that
earned more seeds than the others by the list's decision rule), the no-training baselines,
the run whose FID is also tracked during training (the curve) and optionally a training budget in CPU-hours
(`budget_cpu_hours`: the table then gives each run's training CPU time against it). For every seed, then every run
that has that seed:

1. train `python -m sagan_tf.train` into OUT_DIR/<run>/seed_<k> (train.seed = k: weights, z, data order)
   until the budget; an existing directory resumes from its latest checkpoint, a finished one is
   kept. A run that stops on NaN/Inf (exit 3) is recorded as diverged, and the list goes on. Its
   runner.json records the training's wall and CPU time, machines and commits, and per start of the
   train command (`segments`) the steps, CPU seconds per step and a matmul rate measured just before;
2. evaluate its last checkpoint (`python -m sagan_tf.evaluate`: FID, KID, intra-class FID) into
   OUT_DIR/<run>/seed_<k>/final_eval.json;
3. draw one grid per run (one row per class) into OUT_DIR/grids/<run>-seed_<k>.png.

After the first seed, the baselines are evaluated the same way: `untrained` (the first run's
generator at initialisation) and `pixel_gaussian` (independent per-class per-pixel Gaussians fitted to
the real images). Every stage is skipped when its output exists, so a stopped list resumes where it
was (stop it with SIGTERM or Ctrl-C: training saves a checkpoint first). The table (mean and spread
over seeds) goes to OUT_DIR/results.md and results.json, the curve to OUT_DIR/fid_curve.png.
`--report_only` rewrites the table and the plot from what exists.

A finished run is kept by its small records alone (runner.json, final_eval.json, eval/metrics.jsonl,
the grid): a run list whose OUT_DIR is committed without its checkpoints (see the .gitignore in
results/) resumes on another machine with those runs done, and trains only what is missing.
"""

import os

from lab.experiments.baselines import PixelGaussian, evaluate_baseline  # noqa: F401
from lab.experiments.report import markdown, plot_curve, report, summarise  # noqa: F401
from lab.experiments.spec import (  # noqa: F401
    BASELINES,
    METRICS,
    SpecError,
    all_seeds,
    latest_step,
    load_spec,
    model_dir,
    run_seeds,
)
from lab.experiments.stages import (  # noqa: F401
    draw_grid,
    evaluate_run,
    run_baseline,
    stop_on_sigterm,
    train_run,
)


def run_list(spec, spec_path, out_dir):
    """Every stage of the list that has not been done, in order; returns the results dict. For every
    seed, every run: train, evaluate, draw its grid, rewrite the report; after the first seed, the
    baselines."""
    os.makedirs(out_dir, exist_ok=True)
    os.environ.setdefault("SAGAN_TF_CACHE", os.path.join(os.path.abspath(out_dir), "cache"))
    for index, seed in enumerate(all_seeds(spec)):
        for run in spec["runs"]:
            if seed not in run_seeds(spec, run):
                continue
            directory = model_dir(out_dir, run["name"], seed)
            state = train_run(spec, run, seed, directory)
            if state["status"] == "trained":
                evaluate_run(spec, directory)
                draw_grid(directory, os.path.join(out_dir, "grids", f"{run['name']}-seed_{seed}.png"))
            report(spec, out_dir)
        if index == 0:
            for name in spec.get("baselines", ()):
                run_baseline(spec, spec_path, out_dir, name)
            report(spec, out_dir)
    return report(spec, out_dir)
