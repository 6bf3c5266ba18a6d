"""An A/B table from tools/bench_train.py records: variants timed in alternating rounds of fresh processes.

    PYTHONPATH=tools .venv/bin/python tools/ab_report.py --records=results/bench_train/bn_fused_relu \
        --baseline=base --order=base,fused,relu,both --output=results/bench_train/bn_fused_relu/results.md

Reads `<records>/<variant>_<round>.json` (each written by `tools/bench_train.py --json`; every variant timed in
the same rounds, every record of the same machine, config, batch, precision, threads and timed iterations) and writes a
table: per variant its ms per iteration in each round, the median, and the median of its per-round ratios to the
baseline (the same round's baseline record), with the commits, machines and float32 matmul rates the records
name.
"""

import glob
import os
import re
import statistics

from absl import flags

from lab import checks, records
from sagan_tf import commands  # (no TensorFlow)

FLAGS = flags.FLAGS
flags.DEFINE_string("records", None, "A folder of bench_train records named <variant>_<round>.json.")
flags.DEFINE_string("baseline", None, "The variant the ratios are taken against.")
flags.DEFINE_string("output", None, "The markdown table to write.")
flags.DEFINE_list("order", None, "The variants' order in the table (default: the baseline, then by name).")


SETTINGS = ("machine", "gin_files", "global_batch", "mixed_precision", "threads", "iterations_timed")


def read(folder):
    """{variant: {round: record}} of the records in `folder`."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        match = re.fullmatch(r"(.+)_([1-9]\d*)\.json", os.path.basename(path))
        if not match:
            raise commands.UserError(f"{path} is not named <variant>_<round>.json", "move it out of --records")
        record = records.read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("ms_per_iteration"), (int, float)):
            raise commands.UserError(f"{path} has no ms_per_iteration", "pass tools/bench_train.py --json records")
        found.setdefault(match.group(1), {})[int(match.group(2))] = record
    return found


def report(found, baseline, order=None):
    if baseline not in found:
        raise commands.UserError(f"no records of the baseline {baseline!r}", f"variants found: {', '.join(found) or 'none'}")
    order = order or [baseline] + sorted(v for v in found if v != baseline)
    missing = [v for v in order if v not in found]
    if missing:
        raise commands.UserError(f"--order names variants without records: {', '.join(missing)}")
    if len(set(order)) < len(order) or baseline not in order:
        raise commands.UserError(f"--order={','.join(order)}: name each variant once, the baseline among them")
    rounds = sorted(found[baseline])
    for variant in order:
        if sorted(found[variant]) != rounds:
            raise commands.UserError(f"{variant} was timed in rounds {sorted(found[variant])}, the baseline in {rounds}",
                                     "time every variant in the same rounds")
    every = [record for variant in order for record in found[variant].values()]
    for key in SETTINGS:
        if len({repr(r.get(key)) for r in every}) > 1:
            raise commands.UserError(f"the records differ in {key}", "compare records of one configuration")
    lines = ["| variant | ms per iteration, by round | median | ratio to " + baseline + " (median of rounds) |",
             "|---|---|---|---|"]
    for variant in order:
        ms = [found[variant][r]["ms_per_iteration"] for r in rounds]
        ratios = [found[variant][r]["ms_per_iteration"] / found[baseline][r]["ms_per_iteration"] for r in rounds]
        lines.append(f"| {variant} | {', '.join(f'{m:.1f}' for m in ms)} | {statistics.median(ms):.1f} | "
                     f"{statistics.median(ratios):.3f} |")
    machines = sorted({r.get("machine", "?") for r in every})
    rates = [r["matmul_gflop_per_second"] for r in every if r.get("matmul_gflop_per_second")]
    commits = {variant: sorted({r.get("commit", "?")[:7] for r in found[variant].values()}) for variant in order}
    first = found[baseline][rounds[0]]
    notes = [f"Records: {len(every)} bench_train runs, rounds {', '.join(map(str, rounds))}; machine: {', '.join(machines)}; "
             f"float32 4096^3 matmul {min(rates):.0f}-{max(rates):.0f} GFLOP/s in the same processes."
             if rates else f"Records: {len(every)} bench_train runs; machine: {', '.join(machines)}.",
             f"Config {', '.join(first.get('gin_files', []))}, batch {first.get('global_batch')}, "
             f"precision {first.get('mixed_precision') or 'float32'}, threads {first.get('threads')}, "
             f"{first.get('iterations_timed')} timed iterations per record.",
             "Commits: " + "; ".join(f"{v} {', '.join(c)}" for v, c in commits.items()) + ".",
             "Commands: each record's `command`."]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main(argv):
    del argv
    checks.required("records", FLAGS.records, "pass a folder of tools/bench_train.py --json records")
    checks.folder("records", FLAGS.records, "pass a folder of tools/bench_train.py --json records")
    checks.required("baseline", FLAGS.baseline, "pass the variant the ratios are taken against")
    checks.required("output", FLAGS.output, "pass a .md path for the table")
    checks.output_file("output", FLAGS.output, "pass a .md path for the table")
    table = report(read(FLAGS.records), FLAGS.baseline, FLAGS.order)
    with open(FLAGS.output, "w") as f:
        f.write(table)
    print(table, end="")


if __name__ == "__main__":
    commands.run("tools/ab_report.py", main, __doc__)
