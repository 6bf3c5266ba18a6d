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

from absl import app, flags


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


def main(argv):
    del argv
    table = markdown([load_run(d) for d in flags.FLAGS.runs])
    if flags.FLAGS.output:
        os.makedirs(os.path.dirname(os.path.abspath(flags.FLAGS.output)), exist_ok=True)
        with open(flags.FLAGS.output, "w") as f:
            f.write(table)
    print(table, end="")


if __name__ == "__main__":
    define_flags()
    app.run(main)
