"""FID against CPU-minutes for sagan_tf's Fashion-MNIST runs and the reference's sample sets.

    .venv/bin/python tools/time_to_quality.py --bench=results/bench_reference/<machine>.json \
        --runs=results/fashion_mnist_parity --runs=results/fashion_mnist_ema \
        --reference=results/reference --output=results/time_to_quality

Steps become CPU-minutes with one paired measurement of both implementations at this configuration
(`tools/bench_reference.py --configs=fmnist --precision=float32`, the precision these runs trained in: the
median seconds per iteration of each side, on one
machine, times its threads): minutes = steps x s/iter x threads / 60. FIDs are the 10,000-sample
evaluations (the runner's final_eval.json of every seed, final_eval_raw.json for an EMA run's raw
generator; the reference's sets through tools/eval_reference.py), so both sides are measured alike.
Writes OUTPUT.png (FID on a log scale against CPU-minutes) and OUTPUT.md (the points).
"""

import glob
import json
import os
import re

from absl import flags

from lab import checks
from sagan_tf import commands  # (no TensorFlow)


def define_flags():
    flags.DEFINE_string("bench", None, "A tools/bench_reference.py JSON that includes the fmnist config.")
    flags.DEFINE_multi_string("runs", [], "Experiment-list output directories of the Fashion-MNIST quality runs.")
    flags.DEFINE_string("reference", "results/reference", "tools/eval_reference.py outputs (ref_s<seed>_step<N>.json; "
                        "a set scored again on another machine, ref_s<seed>_step<N>_<machine>.json, counts once).")
    flags.DEFINE_string("output", "results/time_to_quality", "OUTPUT.png and OUTPUT.md.")
    flags.mark_flag_as_required("bench")


def seconds_per_step(bench):
    """{"reference": CPU s/iter, "sagan_tf": CPU s/iter} of the fmnist config of a bench_reference report."""
    rows = [row for row in bench["configs"] if row["config"] == "fmnist"]
    if not rows:
        raise commands.UserError("the --bench report has no fmnist config",
                                 "pass the report of tools/bench_reference.py --configs=fmnist")
    return {side: rows[0][side]["median"] * bench["threads"] for side in ("reference", "sagan_tf")}


def our_points(run_dirs):
    """[(label, steps, fid)] of every evaluated seed of the runs in the experiment-list directories."""
    points = []
    for out_dir in run_dirs:
        for path in sorted(glob.glob(os.path.join(out_dir, "*", "seed_*", "final_eval*.json"))):
            with open(path) as f:
                result = json.load(f)
            if result.get("fid") is None or not result.get("step"):
                continue
            run, seed = path.split(os.sep)[-3], path.split(os.sep)[-2]
            kind = "raw G" if path.endswith("_raw.json") else ("EMA" if result.get("ema") else "")
            points.append((f"{run} {seed}{' ' + kind if kind else ''}", int(result["step"]), float(result["fid"])))
    return points


def reference_points(directory):
    points = []
    for path in sorted(glob.glob(os.path.join(directory, "ref_s*_step*.json"))):
        if not re.fullmatch(r"ref_s\d+_step\d+\.json", os.path.basename(path)):
            continue  # a set scored again elsewhere (ref_s0_step01500_<machine>.json) would count twice
        with open(path) as f:
            result = json.load(f)
        name = os.path.basename(path)[:-len(".json")]
        points.append((name, int(result["step"]), float(result["fid"])))
    return points


def to_minutes(points, seconds):
    return [(label, steps, fid, steps * seconds / 60) for label, steps, fid in points]


def markdown(ours, reference, seconds, machine):
    lines = [f"CPU seconds per iteration (tools/bench_reference.py, fmnist config, {machine}): sagan_tf "
             f"{seconds['sagan_tf']:.2f}, BigGAN-PyTorch {seconds['reference']:.2f}. FID on 10,000 samples.", "",
             "| implementation | sample set | steps | CPU-minutes | FID |", "|---|---|---|---|---|"]
    for name, points in (("sagan_tf", ours), ("BigGAN-PyTorch", reference)):
        for label, steps, fid, minutes in sorted(points, key=lambda p: (p[3], p[0])):
            lines.append(f"| {name} | {label} | {steps:,} | {minutes:.0f} | {fid:.1f} |")
    return "\n".join(lines) + "\n"


def plot(ours, reference, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=120)
    for name, points, marker in (("sagan_tf", ours, "o"), ("BigGAN-PyTorch", reference, "s")):
        if points:
            ax.scatter([p[3] for p in points], [p[2] for p in points], marker=marker, label=name, alpha=0.8)
    ax.set_xlabel("CPU-minutes (steps x measured CPU s/iteration)")
    ax.set_ylabel("FID (10,000 samples)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def read_bench(path):
    """The bench_reference report at `path`; UserError when it is none."""
    return checks.json_file("bench", path, "pass the .json that tools/bench_reference.py --configs=fmnist wrote",
                            ("configs", "threads", "machine"), "a tools/bench_reference.py report")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    for directory in FLAGS.runs:
        checks.folder("runs", directory, "pass an output directory of tools/run_experiments.py")
    if FLAGS["reference"].present:
        checks.folder("reference", FLAGS.reference, "pass the output directory of tools/eval_reference.py")
    checks.output_file("output", FLAGS.output + ".md", "pass a path without extension: OUTPUT.md and OUTPUT.png")
    bench = read_bench(FLAGS.bench)
    seconds = seconds_per_step(bench)
    ours = to_minutes(our_points(FLAGS.runs), seconds["sagan_tf"])
    reference = to_minutes(reference_points(FLAGS.reference), seconds["reference"])
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    table = markdown(ours, reference, seconds, bench["machine"]["description"])
    with open(FLAGS.output + ".md", "w") as f:
        f.write(table)
    plot(ours, reference, FLAGS.output + ".png")
    print(table)
    print(f"Wrote {FLAGS.output}.md and {FLAGS.output}.png")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/time_to_quality.py", main, __doc__)
