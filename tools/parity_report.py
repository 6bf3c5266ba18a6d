"""Parity with BigGAN-PyTorch: an experiment list's per-seed FID and KID against the reference's sets.

    .venv/bin/python tools/parity_report.py --ours=results/fashion_mnist_aligned_bias_1500 --step=1500 \
        --reference=results/reference_aligned --output=results/parity/aligned_1500.md

Reads `<ours>/<run>/seed_<k>/final_eval.json` (the raw generator's evaluation, written by
tools/run_experiments.py) and the reference's `<reference>/ref_s<k>_step<step>.json` (written by
tools/eval_reference.py), checks that both sides were scored against the same real statistics, and writes
a table: mean +- sd per side, the difference (ours - reference), Welch's t and a bootstrap 95% interval of
the difference, and the outcome read from the interval: "ahead" (below 0 for FID), "at parity" (0 inside)
or "behind". The JSON beside the table holds every figure and the commands behind them.

Two of sagan_tf's lists compare the same way (a one-factor test): `--against` names the second list's folder
(and `--against_run` its run) in place of `--reference`, and `--names` labels the two sides:

    .venv/bin/python tools/parity_report.py --ours=results/fashion_mnist_aligned_bias_1500 --step=1500 \
        --against=results/fashion_mnist_aligned_1500 --names="biases uniform (aligned),biases 0" \
        --output=results/parity/biases_1500.md
"""

import glob
import os
import re

from absl import flags

from lab import checks, records
from lab.stats import compare, outcome
from sagan_tf import commands  # (no TensorFlow)

FLAGS = flags.FLAGS
flags.DEFINE_string("ours", None, "An experiment list's output folder (tools/run_experiments.py --out_dir).")
flags.DEFINE_string("run", None, "The run inside it (needed when it holds several).")
flags.DEFINE_string("reference", "results/reference", "The reference's evaluations (tools/eval_reference.py).")
flags.DEFINE_integer("step", None, "The training step both sides are compared at.", lower_bound=1)
flags.DEFINE_string("against", None, "Another experiment list's output folder, compared in place of --reference.")
flags.DEFINE_string("against_run", None, "The run inside --against (needed when it holds several).")
flags.DEFINE_list("names", None, "The two sides' labels (default: sagan_tf,BigGAN-PyTorch).")
flags.DEFINE_string("output", None, "The markdown table to write; a .json with the figures goes beside it.")
METRICS = ("fid", "kid")


def _read(pattern):
    return {path: records.read_json(path) for path in sorted(glob.glob(pattern))}


def _ours(folder, run, step, flag="ours", run_flag="run"):
    runs = sorted(d for d in os.listdir(folder) if glob.glob(os.path.join(folder, d, "seed_*", "final_eval.json")))
    if not runs:
        raise commands.UserError(f"--{flag} {folder} holds no evaluated run", "run tools/run_experiments.py first")
    if run is None and len(runs) > 1:
        raise commands.UserError(f"--{flag} {folder} holds {len(runs)} evaluated runs", f"pass --{run_flag}, one of {', '.join(runs)}")
    run = run or runs[0]
    if run not in runs:
        raise commands.UserError(f"--{run_flag} {run} is not evaluated in {folder}", f"pass one of {', '.join(runs)}")
    evaluations = _read(os.path.join(folder, run, "seed_*", "final_eval.json"))
    evaluations = {path: {**e, "trained_on": _trained_on(path)}
                   for path, e in evaluations.items() if e.get("step") == step}
    if len(evaluations) < 2:
        raise commands.UserError(f"{folder}/{run} has {len(evaluations)} seed(s) evaluated at step {step}",
                                 "wait for at least 2 seeds")
    return run, evaluations


def _seed(path, evaluation):
    """The seed of an evaluation: its own "seed" field, else the number in its path (.../seed_<k>/final_eval.json,
    ref_s<k>_step...json); None when neither gives one."""
    if evaluation.get("seed") is not None:
        return evaluation["seed"]
    found = re.search(r"(?:seed_|ref_s)(\d+)", path)
    return int(found.group(1)) if found else None


def _trained_on(path):
    """The machines a run trained on, from the runner.json beside its evaluation ([] when not recorded)."""
    return records.read_json(os.path.join(os.path.dirname(path), "runner.json"), {}).get("devices", [])


NOT_RECORDED = "a machine not recorded"


def _machines(evaluations):
    """{"trained on" | "scored on": {machine: [seed, ...]}}: what a side's records say of their machines.
    sagan_tf's runs name where they trained (their runner.json: "trained_on"), eval_reference's records where
    the set was scored; an evaluation that names none counts under NOT_RECORDED, so every seed is listed."""
    where = {}
    seeds = {path: _seed(path, e) for path, e in evaluations.items()}
    for path in sorted(evaluations, key=lambda p: (seeds[p] is None, seeds[p] or 0, p)):
        e = evaluations[path]
        verb, machines = ("trained on", e["trained_on"]) if "trained_on" in e else ("scored on", [e.get("machine")])
        for machine in [m for m in machines if m] or [NOT_RECORDED]:
            where.setdefault(verb, {}).setdefault(machine, []).append(seeds[path])
    return where


def _statistics_key(evaluation):
    """The real-statistics cache file's key (its last dash-separated part), which names what it was made of."""
    return os.path.splitext(os.path.basename(evaluation.get("real_statistics") or "?"))[0].rsplit("-", 1)[-1]


SIDES = ("sagan_tf", "BigGAN-PyTorch")


def report(ours, reference, step, names=SIDES):
    import numpy as np  # noqa: PLC0415

    first, second = names
    sides = {first: ours, second: reference}
    keys = {name: sorted({_statistics_key(e) for e in side.values()}) for name, side in sides.items()}
    result = {"step": step, "real_statistics": keys, "same_real_statistics": len(set(sum(keys.values(), []))) == 1,
              "machines": {name: _machines(side) for name, side in sides.items()}}
    for metric in METRICS:
        values = {name: [e[metric] for e in side.values()] for name, side in sides.items()}
        scale = 1000.0 if metric == "kid" else 1.0
        comparison = compare(np.array(values[first]) * scale, np.array(values[second]) * scale)
        result[metric] = {
            "scale": scale,
            "sides": {name: {"values": [v * scale for v in vs], "mean": float(np.mean(vs) * scale),
                             "sd": float(np.std(vs, ddof=1) * scale), "n": len(vs)} for name, vs in values.items()},
            "comparison": comparison, "outcome": outcome(comparison["interval_95"]),
        }
    return result


def markdown(result):
    first, second = result["fid"]["sides"]
    lines = [f"At step {result['step']}, raw generators, 10,000 samples each, the same evaluator "
             f"(real statistics {', '.join(f'{k}: {v}' for k, v in result['real_statistics'].items())}"
             f"{'' if result['same_real_statistics'] else '; NOT the same: the comparison is void'}).", "",
             f"| metric | {first} (mean ± sd, n) | {second} (mean ± sd, n) | difference | Welch's t (df, p) "
             "| bootstrap 95% interval | outcome |", "|---|---|---|---|---|---|---|"]
    for metric in METRICS:
        entry = result[metric]
        name = "KID x 1000" if entry["scale"] != 1.0 else metric.upper()
        sides = [f"{s['mean']:.2f} ± {s['sd']:.2f} ({s['n']})" for s in entry["sides"].values()]
        c = entry["comparison"]
        test = f"{c['t']:.2f} ({c['df']:.1f}, {c['p']:.3f})" if "t" in c else "-"
        lines.append(f"| {name} | {sides[0]} | {sides[1]} | {c['difference']:+.2f} | {test} | "
                     f"{c['interval_95'][0]:+.2f} .. {c['interval_95'][1]:+.2f} | {entry['outcome']} |")
    per_seed = "; ".join(f"{name}: " + ", ".join(f"{v:.1f}" for v in s["values"])
                         for name, s in result["fid"]["sides"].items())
    return "\n".join(lines + ["", f"FID per seed: {per_seed}.", "", _machines_line(result["machines"]), ""])


def _machines_line(machines):
    def seeds(values):
        values = [v for v in values if v is not None]
        return f" (seed{'s' if len(values) > 1 else ''} {', '.join(map(str, values))})" if values else ""

    parts = []
    for name, where in machines.items():
        said = "; ".join(f"{verb} " + ", ".join(f"{m}{seeds(v)}" for m, v in found.items()) for verb, found in where.items())
        if "trained on" not in where:  # eval_reference's records: where the sets were scored, not trained
            said += "; where they trained is not in these records"
        parts.append(f"{name} {said}")
    return f"Machines, as the records give them: {'. '.join(parts)}."


def main(argv):
    del argv
    checks.required("ours", FLAGS.ours, "pass an experiment list's --out_dir")
    checks.required("step", FLAGS.step, "pass the step both sides are compared at")
    checks.folder("ours", FLAGS.ours, "pass an experiment list's --out_dir")
    if FLAGS.against_run and not FLAGS.against:
        raise commands.UserError("--against_run needs --against", "pass the folder of the list it belongs to")
    if FLAGS.against:
        if FLAGS["reference"].present:
            raise commands.UserError("--reference and --against both given", "pass one: the second side is either")
        checks.folder("against", FLAGS.against, "pass another experiment list's --out_dir")
    else:
        checks.folder("reference", FLAGS.reference, "pass the folder tools/eval_reference.py wrote to")
    names = tuple(FLAGS.names or SIDES)
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise commands.UserError(f"--names={','.join(names)}: give two different labels", 'e.g. --names="ours,theirs"')
    checks.required("output", FLAGS.output, "pass a .md path for the table")
    checks.output_file("output", FLAGS.output, "pass a .md path for the table")
    run, ours = _ours(FLAGS.ours, FLAGS.run, FLAGS.step)
    if FLAGS.against:
        against_run, reference = _ours(FLAGS.against, FLAGS.against_run, FLAGS.step, "against", "against_run")
    else:
        reference = _read(os.path.join(FLAGS.reference, f"ref_s*_step{FLAGS.step:05d}.json"))
        if len(reference) < 2:
            raise commands.UserError(f"--reference {FLAGS.reference} has {len(reference)} set(s) at step {FLAGS.step}",
                                     "evaluate them with tools/eval_reference.py")
    result = report(ours, reference, FLAGS.step, names)
    result.update(run=run, ours=sorted(ours))
    if FLAGS.against:
        result.update(against_run=against_run, against=sorted(reference))
    else:
        result.update(reference=sorted(reference))
    records.write_report(FLAGS.output, markdown(result), result)


if __name__ == "__main__":
    commands.run("tools/parity_report.py", main, __doc__)
