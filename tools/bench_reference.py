"""A paired speed comparison with the reference on one machine: BigGAN-PyTorch's SA-GAN and sagan_tf at the
same configurations, timed alternately in fresh processes, in one run of this tool.

    .venv/bin/python tools/bench_reference.py --reference_python=../peer/venv/bin/python \
        --biggan_dir=../peer/biggan [--configs=32,64,128] [--pairs=3]
    .venv/bin/python tools/bench_reference.py --render=results/bench_reference/<machine>.json   # the table again

The reference: the sources of github ajbrock/BigGAN-PyTorch in --biggan_dir and a Python with CPU torch
(its own venv, never the project's), run through tools/reference_biggan_step.py. sagan_tf: tools/
bench_train.py on the gin configs whose parameter counts equal the reference's (checked: the tool stops
if they differ by more than 0.1%). For each config, --pairs pairs of runs in alternating order (AB BA
AB ...), each a new process with --warmup untimed and --iters timed iterations; before each run the
tool waits (up to --max_wait seconds) for the 1-minute load average to fall below --idle_load, and
records the load it started at. --threads threads each; the reference computes in float32, sagan_tf in the
precision its train command would use on this machine (--precision, else the config's own, by default
bfloat16 where the CPU has it natively and float32 elsewhere), named in the table and, for bfloat16, in the
default output name.

Writes OUT.json (every run) and OUT.md (the table: per config the reference's and sagan_tf's seconds
per iteration, every run and the median, the ratio of images/s with its range over pairs, peak memory,
parameter counts; then where each side's peak comes from: its resident memory after the framework's import,
after building the networks and after the iterations) with the machine (CPU model; AVX-512, AVX512_BF16,
AMX or not; cores), the thread settings and the versions; docs/performance.md quotes OUT.md (tools/sync_docs.py).
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import flags

from lab import checks, records
from lab import machine as lab_machine
from sagan_tf import commands, logs  # (no TensorFlow)
from sagan_tf.machine import PRECISIONS, precision_binding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name -> (sagan_tf gin files, global batch, resolution, classes, channel width ch); both sides get RGB.
# "fmnist" is the Fashion-MNIST quality config (ch 16), for converting the reference's steps to CPU time.
CONFIGS = {
    "32": (["cifar10.gin"], 64, 32, 10, 64),
    "64": (["imagenet64.gin"], 32, 64, 1000, 64),
    "128": (["imagenet.gin"], 8, 128, 1000, 64),
    "fmnist": (["experiments/fashion_mnist_quality.gin"], 64, 32, 10, 16),
}
# The table's name of each config.
LABELS = {"32": "CIFAR-10 (cifar10.gin), ch 64", "64": "ImageNet 64 (imagenet64.gin), ch 64",
          "128": "ImageNet 128 (imagenet.gin), ch 64, attention at 64", "fmnist": "Fashion-MNIST quality config, ch 16"}
PARAMETER_TOLERANCE = 1e-3


def define_flags():
    flags.DEFINE_string("reference_python", None, "A Python with torch (the reference's own venv).")
    flags.DEFINE_string("biggan_dir", None, "BigGAN-PyTorch's sources (BigGAN.py, layers.py, ...).")
    flags.DEFINE_list("configs", ["32", "64", "128"], f"Configurations among {sorted(CONFIGS)}.")
    flags.DEFINE_integer("pairs", 3, "Pairs of runs per configuration (alternating order).", lower_bound=1)
    flags.DEFINE_integer("warmup", 1, "Untimed iterations per run.", lower_bound=0)
    flags.DEFINE_integer("iters", 3, "Timed iterations per run (median).", lower_bound=1)
    flags.DEFINE_integer("threads", 2, "Threads of each side (torch.set_num_threads; TensorFlow intra-op).",
                         lower_bound=1)
    flags.DEFINE_float("idle_load", 0.3, "Start a run only below this 1-minute load average...")
    flags.DEFINE_integer("max_wait", 900, "...waiting at most this many seconds (then run, and say so).")
    flags.DEFINE_enum("max_isa", None, ["avx2"],
                      "Limit both sides' kernels to this instruction set (ONEDNN_MAX_CPU_ISA for TensorFlow's and torch's "
                      "oneDNN, MKL_ENABLE_INSTRUCTIONS for torch's MKL): an approximation of an AVX2 CPU on an AVX-512 one "
                      "(same clock and caches), labelled as such in the table.")
    flags.DEFINE_enum("precision", None, list(PRECISIONS), "sagan_tf's precision, as the train "
                      "command's flag (default: the configs' own, as the train command runs them).")
    flags.DEFINE_string("output", None, "OUT.json and OUT.md (default results/bench_reference/<machine>).")
    flags.DEFINE_string("render", None, "Only rewrite the table (.md) of this OUT.json; runs nothing.")


def pair_orders(pairs):
    """[("reference", "sagan_tf"), ("sagan_tf", "reference"), ...]: alternating, so that drift over the
    run (heat, other load) falls on both sides equally."""
    sides = ("reference", "sagan_tf")
    return [sides if i % 2 == 0 else sides[::-1] for i in range(pairs)]


def result_line(text):
    """The JSON of the last `RESULT {...}` line of a run's output."""
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError("The run printed no RESULT line:\n" + text[-2000:])
    return json.loads(lines[-1][len("RESULT "):])


def check_parameters(reference, ours, name):
    """Raises unless G's and D's parameter counts of the two sides agree within PARAMETER_TOLERANCE."""
    for key in ("g_params", "d_params"):
        if abs(reference[key] - ours[key]) > PARAMETER_TOLERANCE * reference[key]:
            raise ValueError(f"Config {name}: {key} differ (reference {reference[key]:,}, sagan_tf {ours[key]:,}): "
                             "not the same networks, so the times would not compare.")


def summarise(name, runs):
    """Per config: each side's runs and median s/iter, the images/s ratio sagan_tf / reference (median of
    the per-pair ratios, and their range), peak memory."""
    by_side = {side: [r for r in runs if r["side"] == side] for side in ("reference", "sagan_tf")}
    pairs = [(runs[i], runs[i + 1]) for i in range(0, len(runs) - 1, 2)]
    ratios = []
    for a, b in pairs:
        reference, ours = (a, b) if a["side"] == "reference" else (b, a)
        ratios.append(reference["seconds_per_iteration"] / ours["seconds_per_iteration"])
    summary = {"config": name}
    for side, items in by_side.items():
        seconds = [r["seconds_per_iteration"] for r in items]
        summary[side] = {"seconds": seconds, "median": statistics.median(seconds) if seconds else None,
                         "peak_rss_gib": max((r.get("peak_rss_gib", 0) for r in items), default=None),
                         "peak_anonymous_gib": max((r["peak_anonymous_gib"] for r in items
                                                    if r.get("peak_anonymous_gib") is not None), default=None),
                         "start_loads": [r.get("start_load") for r in items]}
    summary["ratio"] = statistics.median(ratios) if ratios else None
    summary["ratio_range"] = [min(ratios), max(ratios)] if ratios else None
    if runs:
        summary["batch"], summary["resolution"] = runs[0]["batch"], runs[0]["resolution"]
        summary["g_params"], summary["d_params"] = runs[0]["g_params"], runs[0]["d_params"]
    return summary


def onednn_state(report):
    """How sagan_tf's runs used oneDNN: as bench_train recorded it (it sets TF_ENABLE_ONEDNN_OPTS as the train
    command does), else the variable the tool ran under."""
    states = {r.get("onednn") for r in report.get("runs", []) if r["side"] == "sagan_tf"} - {None}
    if states:
        return "oneDNN " + "/".join(sorted({"1": "on", "0": "off"}.get(x, x) for x in states)) + ", as the train command"
    return f"TF_ENABLE_ONEDNN_OPTS={report['onednn'] or 'unset'}"


def markdown(report):
    """The table of a report (as written to OUT.json)."""
    machine = report["machine"]
    lines = [
        f"Machine: {machine['description']}; AVX-512 {'yes' if machine['avx512f'] else 'no'}, AVX512_BF16 "
        f"{'yes' if machine['avx512_bf16'] else 'no'}, AMX {'yes' if machine['amx_bf16'] else 'no'}. "
        f"{report['threads']} threads per side; BigGAN-PyTorch in float32 on torch {report['torch']}, sagan_tf in "
        f"{sagan_tf_precision(report)} on TensorFlow {report['tensorflow']} ({onednn_state(report)}). "
        + (f"Kernels limited to {report['max_isa'].upper()} on both sides (ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS): "
           f"an approximation of a CPU without AVX-512 on this one, not such a CPU. " if report.get("max_isa") else "")
        + f"{report['pairs']} pairs per config in alternating order, fresh processes, {report['warmup']} untimed + "
        f"{report['iters']} timed iterations each (median); one iteration = one D step + one G step.", "",
        "| config | parameters G / D | BigGAN-PyTorch s/iter (runs; median) | sagan_tf s/iter (runs; median) "
        "| images/s ratio sagan_tf / reference (range over pairs) | GFLOP/s reference / sagan_tf "
        "| peak memory reference / sagan_tf | sagan_tf executed GFLOP/s / matmul GFLOP/s |",
        "|---|---|---|---|---|---|---|---|"]
    def rates(row):
        """Achieved GFLOP/s of both sides: sagan_tf's live-op count of the step over each side's median."""
        flops = [r["gflop_per_iteration"] for r in side_runs(report, row["config"], "sagan_tf")
                 if r.get("gflop_per_iteration")]
        if not flops:
            return "-"
        return " / ".join(f"{flops[0] / row[side]['median']:.0f}" for side in ("reference", "sagan_tf"))

    def executed(row):
        """sagan_tf's executed GFLOP/s (its fused convolutions' count) over its median, against the median of
        the float32 4096^3 matmul rates its runs measured after their steps, and the fraction."""
        runs = side_runs(report, row["config"], "sagan_tf")
        flops = [r["gflop_executed_per_iteration"] for r in runs if r.get("gflop_executed_per_iteration")]
        matmul = [r["matmul_gflop_per_second"] for r in runs if r.get("matmul_gflop_per_second")]
        if not flops or not matmul:
            return "-"
        rate, ceiling = flops[0] / row["sagan_tf"]["median"], statistics.median(matmul)
        text = f"{rate:.0f} / float32 {ceiling:.0f} ({rate / ceiling:.2f})"
        bf16 = [r["matmul_bfloat16_gflop_per_second"] for r in runs if r.get("matmul_bfloat16_gflop_per_second")]
        if bf16:  # a bfloat16 step: also against the ceiling of the precision it computes in
            text += f"; bfloat16 {statistics.median(bf16):.0f} ({rate / statistics.median(bf16):.2f})"
        return text

    def anonymous(row):
        """The anonymous part of both peaks (lab.memory), where both sides' runs sampled it."""
        figures = [row[side].get("peak_anonymous_gib") for side in ("reference", "sagan_tf")]
        return "" if None in figures else f"; anonymous {figures[0]:.2f} / {figures[1]:.2f}"

    for row in report["configs"]:
        ref, ours = row["reference"], row["sagan_tf"]
        runs = lambda side: ", ".join(f"{s:.2f}" for s in side["seconds"])  # noqa: E731
        lines.append(
            f"| {LABELS.get(row['config'], row['config'])}: {row['resolution']}x{row['resolution']}, batch {row['batch']} | {row['g_params'] / 1e6:.2f}M / "
            f"{row['d_params'] / 1e6:.2f}M | {runs(ref)}; {ref['median']:.2f} | {runs(ours)}; {ours['median']:.2f} | "
            f"{row['ratio']:.2f}x ({row['ratio_range'][0]:.2f}-{row['ratio_range'][1]:.2f}) | {rates(row)} | "
            f"{ref['peak_rss_gib']:.2f} / {ours['peak_rss_gib']:.2f} GiB{anonymous(row)} | {executed(row)} |")
    busy = [load for row in report["configs"] for side in ("reference", "sagan_tf")
            for load in row[side]["start_loads"] if load is not None and load >= report["idle_load"]]
    if busy:
        lines += ["", f"Warning: {len(busy)} run(s) started with the load average above {report['idle_load']} "
                      f"(up to {max(busy):.2f}): the machine was not idle."]
    lines += ["", "GFLOP/s: the convolutions and matrix products of one iteration as tools/bench_train.py counts them "
                  "(forward and backward, ops that run), over each side's median seconds per iteration."]
    executed = [r["gflop_executed_per_iteration"] / r["gflop_per_iteration"] for r in report.get("runs", [])
                if r.get("gflop_executed_per_iteration") and r.get("gflop_per_iteration")]
    if executed and min(executed) < 1:
        lines[-1] += (" Counted on the model as written (upsample then convolve, convolve then pool), the work the "
                      "reference does; sagan_tf's fused resampling convolutions (sagan_tf.layers.resampling) execute "
                      f"{min(executed):.2f}-{max(executed):.2f} of it, so its figure is the model's FLOPs per second, "
                      "not the rate of its kernels.")
    if any(row[side].get("peak_anonymous_gib") is not None for row in report["configs"]
           for side in ("reference", "sagan_tf")):
        lines += ["", "Peak memory: each side's peak resident set (ru_maxrss) and, after \"anonymous\", the peak of its "
                      "anonymous part (RssAnon, sampled every 5 ms from before the framework's import to the last timed "
                      "iteration; lab.memory): the resident set also counts the touched pages of the frameworks' "
                      "shared libraries, which the kernel can drop and reread from their files."]
        if any(r.get("release_start_up_pages") for r in report.get("runs", [])):
            lines[-1] += (" sagan_tf's runs unmap those pages as its train command does, after the imports and after "
                          "the untimed iteration (sagan_tf.memory), so that its resident set holds the pages that "
                          "training touched.")
    lines += ["", "Executed: sagan_tf's convolutions and matrix products as they run (the fused ones' own FLOPs) over "
                  "its median seconds per iteration, against the float32 4096^3 matmul rate its runs measured after "
                  "their steps (median), and the fraction (\"-\": a record without them); for a bfloat16 step, also "
                  "against the bfloat16 matmul rate."]
    return "\n".join(lines + memory_stages(report)) + "\n"


SIDES = {"reference": "BigGAN-PyTorch", "sagan_tf": "sagan_tf"}


def sagan_tf_precision(report):
    """What sagan_tf's steps computed in, as its runs recorded it (float32 in records from before they did)."""
    names = {r.get("mixed_precision") or "float32" for r in report.get("runs", []) if r["side"] == "sagan_tf"}
    return " and ".join(sorted(names)) or "float32"


def side_runs(report, config, side):
    """The runs of one side at one config, in a report's order."""
    return [r for r in report.get("runs", []) if r["config"] == config and r["side"] == side]


def memory_stages(report):
    """The table of where each side's peak comes from, for the runs that took memory_stages (else nothing):
    medians over each side's runs, in GiB."""
    rows = []
    for row in report["configs"]:
        for side, name in SIDES.items():
            runs = [r for r in side_runs(report, row["config"], side)
                    if r.get("memory_stages") and r.get("peak_anonymous_gib") is not None]
            if not runs:
                continue

            def median(read):
                return statistics.median(read(r["memory_stages"], r) for r in runs)

            columns = (
                median(lambda stages, r: stages["imported"]["anonymous_gib"]),
                median(lambda stages, r: stages["imported"]["file_gib"]),
                median(lambda stages, r: stages["built"]["anonymous_gib"] - stages["imported"]["anonymous_gib"]),
                median(lambda stages, r: r["peak_anonymous_gib"] - stages["built"]["anonymous_gib"]),
                median(lambda stages, r: r["peak_anonymous_gib"]),
                median(lambda stages, r: stages["trained"]["file_gib"]),
                median(lambda stages, r: r["peak_rss_gib"]))
            rows.append(f"| {LABELS.get(row['config'], row['config'])} | {name} | {columns[0]:.2f} / "
                        + " | ".join(f"{value:.2f}" for value in columns[1:]) + " |")
    if not rows:
        return []
    return ["", "Where each peak comes from (GiB, the median over each side's runs): the resident memory after the "
                "framework's import (anonymous / file-backed), the anonymous memory that building the networks and "
                "their optimisers added, what the iterations added above that at their peak, the peak of the "
                "anonymous part, the file-backed part after the iterations (the libraries' touched pages), and the "
                "peak resident set. torch creates Adam's moments at the first step, so the reference's moments "
                "count in its iterations column; Keras builds them with the networks.", "",
            "| config | side | imported: anonymous / file-backed | + networks and optimisers | + iterations "
            "(at the peak) | peak anonymous | file-backed after the iterations | peak resident set |",
            "|---|---|---|---|---|---|---|---|", *rows]


def load_average():
    return os.getloadavg()[0]


def wait_for_idle(threshold, max_wait, sleep=10.0):
    """Waits until the 1-minute load average is below `threshold` (at most `max_wait` s); returns it."""
    deadline = time.time() + max_wait
    load = load_average()
    while load >= threshold and time.time() < deadline:
        time.sleep(sleep)
        load = load_average()
    return load


ISA_VARIABLES = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def run_environment(max_isa):
    """The environment of each timed run: this one, with the kernels limited to `max_isa` if given."""
    return {**os.environ, **ISA_VARIABLES.get(max_isa, {})}


def run_reference(name, warmup, iters, threads, reference_python, biggan_dir, max_isa=None):
    _, batch, resolution, _, ch = CONFIGS[name]
    cmd = [reference_python, os.path.join(REPO, "tools", "reference_biggan_step.py"), f"--biggan_dir={biggan_dir}",
           f"--resolution={resolution}", f"--batch={batch}", f"--ch={ch}", f"--warmup={warmup}", f"--iters={iters}",
           f"--threads={threads}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=run_environment(max_isa))
    if done.returncode:
        raise RuntimeError(f"The reference failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return result_line(done.stdout)


def resolved_precisions(names, precision, max_isa):
    """{config: the precision bench_train runs it in}, as the train command resolves it in the environment of the
    timed runs (one fresh process: it reads the CPU and ONEDNN_MAX_CPU_ISA): "float32" or the Keras policy."""
    bindings = [precision_binding(precision)] if precision else []
    code = ("from sagan_tf import config, gin_registry, trainer\n"
            f"for files in {[CONFIGS[name][0] for name in names]!r}:\n"
            "    with config.isolated():\n"
            f"        config.parse(files, {bindings!r})\n"
            "        print(trainer.configured_precision() or 'float32')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=run_environment(max_isa))
    if done.returncode:
        raise RuntimeError(f"Could not resolve sagan_tf's precision:\n{done.stderr[-2000:]}")
    return dict(zip(names, done.stdout.split()[-len(names):]))


def run_sagan_tf(name, warmup, iters, threads, output, max_isa=None, precision=None):
    gin_files, batch, resolution, classes, _ = CONFIGS[name]
    cmd = [sys.executable, os.path.join(REPO, "tools", "bench_train.py"), *[f"--gin_file={f}" for f in gin_files],
           f"--batch={batch}", f"--resolution={resolution}", f"--num_classes={classes}", "--channels=3", f"--warmup={warmup}",
           f"--steps={iters}", f"--threads={threads}", f"--json={output}"]  # with the matmul rate, after the steps
    cmd += [f"--precision={precision}"] if precision else []
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=run_environment(max_isa))
    if done.returncode:
        raise RuntimeError(f"sagan_tf's benchmark failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    with open(output) as f:
        figures = json.load(f)
    return {"implementation": "sagan_tf", "resolution": resolution, "batch": batch, "g_params": figures["g_params"],
            "d_params": figures["d_params"], "seconds_per_iteration": figures["ms_per_iteration"] / 1000,
            "peak_rss_gib": figures["peak_host_rss_gib"], "peak_anonymous_gib": figures.get("peak_host_anonymous_gib"),
            "gflop_per_iteration": figures["gflop_per_iteration"],
            "gflop_executed_per_iteration": figures.get("gflop_executed_per_iteration"),
            "matmul_gflop_per_second": figures.get("matmul_gflop_per_second"), "onednn": figures.get("onednn"),
            "mixed_precision": figures.get("mixed_precision"),
            "matmul_bfloat16_gflop_per_second": figures.get("matmul_bfloat16_gflop_per_second"),
            "memory_stages": figures.get("memory_stages"), "release_start_up_pages": figures.get("release_start_up_pages")}


def read_report(path):
    """The OUT.json of an earlier run, for --render."""
    return checks.json_file("render", path, "pass the OUT.json a run of tools/bench_reference.py wrote",
                            ("machine", "configs", "runs"), "a tools/bench_reference.py report")


def check_flags(FLAGS):  # noqa: N803
    """The checks of a measuring run, before TensorFlow starts."""
    for flag, fix in (("reference_python", "pass the python of a venv with torch"),
                      ("biggan_dir", "pass a checkout of ajbrock/BigGAN-PyTorch")):
        checks.required(flag, FLAGS[flag].value, f"{fix}, or --render=OUT.json to rewrite a table")
    unknown = [c for c in FLAGS.configs if c not in CONFIGS]
    if unknown:
        raise commands.UserError(f"--configs: unknown configs {unknown}", f"pass some of {','.join(CONFIGS)}")
    checks.folder("biggan_dir", FLAGS.biggan_dir, "pass a checkout of ajbrock/BigGAN-PyTorch")
    if not os.path.isfile(os.path.join(FLAGS.biggan_dir, "BigGAN.py")):
        raise commands.UserError(f"--biggan_dir {FLAGS.biggan_dir} has no BigGAN.py",
                                 "pass a checkout of ajbrock/BigGAN-PyTorch")
    checks.executable("reference_python", FLAGS.reference_python, "pass the python of a venv with torch")
    if FLAGS.output:
        checks.output_file("output", FLAGS.output + ".json", "pass a path without extension: OUT.json and OUT.md")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    if FLAGS.render:
        report = read_report(FLAGS.render)
        path = os.path.splitext(FLAGS.render)[0] + ".md"
        with open(path, "w") as f:
            f.write(markdown(report))
        print(f"Wrote {path}")
        return
    check_flags(FLAGS)
    logs.quiet_libraries()
    import tensorflow as tf  # noqa: PLC0415

    machine = lab_machine.describe()
    precisions = resolved_precisions(FLAGS.configs, FLAGS.precision, FLAGS.max_isa)
    compute = "bfloat16" if "mixed_bfloat16" in precisions.values() else "float32"
    output = FLAGS.output or os.path.join(REPO, "results", "bench_reference", lab_machine.slug(machine["description"])
                                          + (f"_max_isa_{FLAGS.max_isa}" if FLAGS.max_isa else "")
                                          + ("_bfloat16" if compute == "bfloat16" else ""))
    checks.output_file("output", output + ".json", "pass a path without extension: OUT.json and OUT.md")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    torch_version = subprocess.run([FLAGS.reference_python, "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    report = {"machine": machine,
              "threads": FLAGS.threads, "pairs": FLAGS.pairs, "warmup": FLAGS.warmup, "iters": FLAGS.iters,
              "idle_load": FLAGS.idle_load, "torch": torch_version, "tensorflow": tf.__version__,
              "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "max_isa": FLAGS.max_isa,
              "sagan_tf_precision": precisions, "configs": [], "runs": []}
    for name in FLAGS.configs:
        runs = []
        for order in pair_orders(FLAGS.pairs):
            for side in order:
                load = wait_for_idle(FLAGS.idle_load, FLAGS.max_wait)
                if side == "reference":
                    result = run_reference(name, FLAGS.warmup, FLAGS.iters, FLAGS.threads, FLAGS.reference_python,
                                           FLAGS.biggan_dir, FLAGS.max_isa)
                else:
                    result = run_sagan_tf(name, FLAGS.warmup, FLAGS.iters, FLAGS.threads, output + ".sagan_tf.json",
                                          FLAGS.max_isa, FLAGS.precision)
                result.update(side=side, config=name, start_load=load)
                runs.append(result)
                print(f"[{name}] {side}: {result['seconds_per_iteration']:.3f} s/iter (load at start {load:.2f})",
                      flush=True)
            check_parameters(*(next(r for r in runs if r["side"] == s) for s in ("reference", "sagan_tf")), name)
        report["runs"] += runs
        report["configs"].append(summarise(name, runs))
        report = records.write(output + ".json", report, machine=machine)
    if os.path.exists(output + ".sagan_tf.json"):
        os.remove(output + ".sagan_tf.json")
    with open(output + ".md", "w") as f:
        f.write(markdown(report))
    print(markdown(report))
    print(f"Wrote {output}.json and {output}.md")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/bench_reference.py", main, __doc__)
