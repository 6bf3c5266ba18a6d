"""A table of shape-identity scores over training steps, from tools/shape_score.py's JSON files.

    .venv/bin/python tools/shape_curve.py --runs=results/default_run/c8 --runs=... --output=results/default_run/results.md

Each run directory holds `shape_<step>.json` (tools/shape_score.py --json: the sampling generator, i.e. the EMA
one when the run kept an EMA), optionally `raw_final.json` (--generator=raw at the last step) and `run.json`
({"label": ..., "wall_seconds": ..., "command": ..., "machine": ...}). Writes one row per run: the score of
all classes at every step scored (the worst class in brackets), the raw generator's last score, the real
data's score, the wall time.
"""

import glob
import json
import os
import re

from absl import flags

from lab import checks
from sagan_tf import commands  # (no TensorFlow)


def define_flags():
    flags.DEFINE_multi_string("runs", [], "Run directories with shape_<step>.json and run.json.")
    flags.DEFINE_string("output", None, "The markdown table to write (default: print it).")


def load_run(directory):
    """(run.json's facts, {step: shape_score JSON}, the raw generator's last JSON or None) of one run directory."""
    with open(os.path.join(directory, "run.json")) as f:
        facts = json.load(f)
    scores, raw = {}, None
    if os.path.exists(os.path.join(directory, "raw_final.json")):
        with open(os.path.join(directory, "raw_final.json")) as f:
            raw = json.load(f)
    for path in glob.glob(os.path.join(directory, "shape_*.json")):
        step = int(re.search(r"shape_(\d+)\.json$", path).group(1))
        with open(path) as f:
            scores[step] = json.load(f)
    return facts, scores, raw


def markdown(runs):
    """The table of [(facts, scores, raw)]: score of all classes (worst class) per step."""
    steps = sorted({step for _, scores, _ in runs for step in scores})
    lines = ["| run | " + " | ".join(f"step {s}" for s in steps) + " | raw G, last step | real data | wall time "
             "| machine |", "|---|" + "---|" * (len(steps) + 4)]
    for facts, scores, raw in runs:
        cells = []
        for step in steps:
            if step in scores:
                generated = scores[step]["generated"]
                cells.append(f"{generated['score']:.2f} ({min(generated['per_class']):.2f})")
            else:
                cells.append("-")
        real = next(iter(scores.values()))["real"]["score"] if scores else float("nan")
        last = "-" if raw is None else f"{raw['generated']['score']:.2f} ({min(raw['generated']['per_class']):.2f})"
        lines.append(f"| {facts['label']} | " + " | ".join(cells) + f" | {last} | {real:.2f} | "
                     f"{facts['wall_seconds'] / 60:.1f} min | {facts['machine']} |")
    return "\n".join(lines) + "\n"


def check_flags(runs, output):
    """Each run directory holds run.json; the output is a file path."""
    checks.required("runs", runs, "pass --runs=DIR once per run directory")
    for directory in runs:
        checks.folder("runs", directory, "pass a run directory with shape_<step>.json and run.json")
        if not os.path.isfile(os.path.join(directory, "run.json")):
            raise commands.UserError(f"--runs {directory} holds no run.json",
                                     "pass a directory with run.json and tools/shape_score.py's shape_<step>.json")
    if output:
        checks.output_file("output", output, "pass a .md file path")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    check_flags(FLAGS.runs, FLAGS.output)
    try:
        runs = [load_run(d) for d in FLAGS.runs]
    except (ValueError, KeyError) as error:
        raise commands.UserError(f"a file of --runs cannot be read: {error!r}",
                                 "rewrite it with tools/shape_score.py --json") from None
    table = markdown(runs)
    print(table, end="")
    if FLAGS.output:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        with open(FLAGS.output, "w") as f:
            f.write(table)
        print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/shape_curve.py", main, __doc__)
