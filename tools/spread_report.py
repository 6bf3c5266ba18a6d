"""Same seed, same result? The spread of one seed trained several times, per mode.

    .venv/bin/python tools/spread_report.py --runs=results/fashion_mnist_aligned_same_seed \
        --groups=deterministic,default --step=1500 --output=results/fashion_mnist_aligned_same_seed/spread.md

Reads an experiment list's output folder (tools/run_experiments.py --out_dir) whose runs train the same seed
again and again; a group is the runs whose names start with `<group>_` (deterministic_a, deterministic_b,
...). For each group it writes the FID and KID of every rerun (`<run>/seed_<k>/final_eval.json`, the raw
generator at --step), their mean, standard deviation and range, and how far the reruns' training agreed:
the logged losses (`train.log`) compared step by step, "identical" or the first logged step where they
differ. Every evaluation must use the same real statistics. The JSON beside the table holds the figures,
the runs' commits and devices, and the command.
"""

import collections
import glob
import os
import re

from absl import flags

from lab import checks, records
from sagan_tf import commands  # (no TensorFlow)

FLAGS = flags.FLAGS
flags.DEFINE_string("runs", None, "An experiment list's output folder whose runs retrain one seed.")
flags.DEFINE_list("groups", None, "Run-name prefixes, one per mode (runs named <group>_<anything>).")
flags.DEFINE_integer("step", None, "The training step the reruns are evaluated at.", lower_bound=1)
flags.DEFINE_string("output", None, "The markdown table to write; a .json with the figures goes beside it.")
# A train.log line: "step 100/1500  d_loss 2.7486  g_loss 2.0503 ...  94.2 images/s ..."; the losses only.
LOG_LINE = re.compile(r"^step (\d+)/\d+\s+(.*?)\s+[\d.,]+ images/s")
# Where a process of the run starts: "Training DIR: new run, ..." or "Training DIR: resuming at step N, ...".
START_LINE = re.compile(r"^Training .*: (new run|resuming at step (\d+)),")


def logged_losses(path):
    """{step: "d_loss ... g_grad_norm ..."} of a run's train.log, timings left out; {} without a log.

    A logged figure is the mean over the steps since the previous log line of its process, so the first line
    after a resume covers part of a window only: it is left out (a step logged again keeps a whole window's
    copy)."""
    if not os.path.exists(path):
        return {}
    lines, start, previous = [], 0, None  # (step, losses, steps the figure averages, first after a resume)
    with open(path) as f:
        for line in f:
            line = line.strip()
            begins = START_LINE.match(line)
            if begins:
                start, previous = int(begins.group(2) or 0), None
                continue
            match = LOG_LINE.match(line)
            if match:
                step = int(match.group(1))
                lines.append((step, " ".join(match.group(2).split()), step - (start if previous is None else previous),
                              previous is None and start > 0))
                previous = step
    whole = collections.Counter(n for _, _, n, resumed in lines if not resumed)
    window = whole.most_common(1)[0][0] if whole else None  # the log interval
    losses = {}
    for step, figures, n, resumed in lines:
        if not resumed or (window is not None and n >= window):
            losses[step] = figures
    return losses


def agreement(logs):
    """How the reruns' logged losses agree: {"steps": logged steps compared, "identical": bool,
    "first_difference": the first logged step where any two differ (None if identical)}."""
    steps = sorted(set.intersection(*(set(log) for log in logs))) if logs else []
    differing = [step for step in steps if len({log[step] for log in logs}) > 1]
    return {"steps": len(steps), "identical": bool(steps) and not differing,
            "first_difference": differing[0] if differing else None}


def collect(folder, groups, step):
    """{group: [{"run", "seed", "fid", "kid", "num_generated", "real_statistics", "losses", "commits", "devices"}]}
    of every rerun evaluated at `step`. Raises UserError when a group has fewer than two, when a run's name
    falls in two groups, or when the reruns are not all of one seed."""
    members = {}
    for group in groups:
        for path in glob.glob(os.path.join(glob.escape(folder), glob.escape(group) + "_*")):
            members.setdefault(os.path.basename(path), []).append(group)
    for run, named in sorted(members.items()):
        if len(named) > 1:
            raise commands.UserError(f"--groups: run {run} is named by {' and '.join(named)}",
                                     "give prefixes of which no run matches two")
    found = {}
    for group in groups:
        reruns = []
        for run in sorted(r for r, named in members.items() if named == [group]):
            for path in sorted(glob.glob(os.path.join(glob.escape(folder), run, "seed_*", "final_eval.json"))):
                evaluation = records.read_json(path)
                if evaluation.get("step") != step or evaluation.get("ema"):
                    continue
                seed_dir = os.path.dirname(path)
                runner = records.read_json(os.path.join(seed_dir, "runner.json"), {})
                reruns.append({"run": run, "seed": os.path.basename(seed_dir), "fid": evaluation["fid"],
                               "kid": evaluation["kid"], "num_generated": evaluation.get("num_generated"),
                               "real_statistics": os.path.basename(evaluation.get("real_statistics") or "?"),
                               "losses": logged_losses(os.path.join(seed_dir, "train.log")),
                               "commits": runner.get("commits", []), "devices": runner.get("devices", [])})
        if len(reruns) < 2:
            raise commands.UserError(f"--groups {group}: {len(reruns)} run(s) named {group}_* evaluated at step {step} "
                                     f"in {folder}", "wait for at least 2, or check the group's name")
        found[group] = reruns
    seeds = sorted({r["seed"] for reruns in found.values() for r in reruns})
    runs = [r["run"] for reruns in found.values() for r in reruns]
    if len(seeds) > 1 or len(set(runs)) < len(runs):
        raise commands.UserError(f"--runs {folder}: the runs hold {', '.join(seeds)}, not one seed each",
                                 "pass a list that trains one seed again and again (e.g. fashion_mnist_aligned_same_seed.json)")
    return found


def report(found, step):
    import numpy as np  # noqa: PLC0415

    keys = sorted({r["real_statistics"] for reruns in found.values() for r in reruns})
    samples = sorted({r["num_generated"] for reruns in found.values() for r in reruns}, key=str)
    seed = next(iter(found.values()))[0]["seed"]
    result = {"step": step, "seed": seed, "num_generated": samples, "real_statistics": keys,
              "same_real_statistics": len(keys) == 1, "groups": {}}
    for group, reruns in found.items():
        fid = np.array([r["fid"] for r in reruns])
        kid = np.array([r["kid"] for r in reruns]) * 1000.0
        result["groups"][group] = {
            "runs": {r["run"]: {"fid": r["fid"], "kid_x1000": r["kid"] * 1000.0, "commits": r["commits"],
                                "devices": r["devices"]} for r in reruns},
            "n": len(reruns), "fid_mean": float(fid.mean()), "fid_sd": float(fid.std(ddof=1)),
            "fid_range": float(fid.max() - fid.min()), "kid_x1000_mean": float(kid.mean()),
            "kid_x1000_sd": float(kid.std(ddof=1)), "losses": agreement([r["losses"] for r in reruns])}
    return result


def markdown(result):
    samples = " or ".join(f"{n:,}" if isinstance(n, int) else "?" for n in result["num_generated"])
    lines = [f"{result['seed'].replace('_', ' ').capitalize()} trained again, evaluated at step {result['step']}, raw "
             f"generator, {samples} samples each "
             f"(real statistics {', '.join(result['real_statistics'])}"
             f"{'' if result['same_real_statistics'] else '; NOT the same: the spread is void'}).", "",
             "| mode | reruns | FID per rerun | FID mean ± sd | FID range | KID x 1000 mean ± sd | logged losses |",
             "|---|---|---|---|---|---|---|"]
    for group, entry in result["groups"].items():
        per_run = ", ".join(f"{v['fid']:.2f}" for v in entry["runs"].values())
        losses = entry["losses"]
        agreed = (f"identical at all {losses['steps']} logged steps" if losses["identical"] else
                  f"differ from step {losses['first_difference']}" if losses["first_difference"] is not None else
                  "not logged")
        lines.append(f"| {group} | {entry['n']} | {per_run} | {entry['fid_mean']:.2f} ± {entry['fid_sd']:.2f} | "
                     f"{entry['fid_range']:.2f} | {entry['kid_x1000_mean']:.2f} ± {entry['kid_x1000_sd']:.2f} | {agreed} |")
    return "\n".join(lines + [""])


def main(argv):
    del argv
    checks.required("runs", FLAGS.runs, "pass an experiment list's --out_dir")
    checks.folder("runs", FLAGS.runs, "pass an experiment list's --out_dir")
    checks.required("groups", FLAGS.groups, 'pass the run-name prefixes, e.g. --groups=deterministic,default')
    if len(set(FLAGS.groups)) != len(FLAGS.groups) or not all(FLAGS.groups):
        raise commands.UserError(f"--groups={','.join(FLAGS.groups)}: give different, non-empty prefixes",
                                 "e.g. --groups=deterministic,default")
    checks.required("step", FLAGS.step, "pass the step the reruns were evaluated at")
    checks.required("output", FLAGS.output, "pass a .md path for the table")
    checks.output_file("output", FLAGS.output, "pass a .md path for the table")
    result = report(collect(FLAGS.runs, FLAGS.groups, FLAGS.step), FLAGS.step)
    records.write_report(FLAGS.output, markdown(result), result)


if __name__ == "__main__":
    commands.run("tools/spread_report.py", main, __doc__)
