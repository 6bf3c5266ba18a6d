"""Trains a list of gin configs for a fixed step budget, evaluates each, and writes a results table.

    python tools/run_experiments.py --spec=tools/experiments/fashion_mnist_ablations.json \
        --out_dir=results/fashion_mnist_ablations

The spec (JSON) names the shared gin files, the step budget, the seeds, the evaluation (samples,
classifier), the runs (name, title, extra gin files and bindings), the no-training baselines and
the run whose FID is also tracked during training (the curve). For every seed, then every run:

1. train `python -m sagan_tf.train` into OUT_DIR/<run>/seed_<k> (train.seed = k: weights, z, data order)
   until the budget; an existing directory resumes from its latest checkpoint, a finished one is
   kept. A run that stops on NaN/Inf (exit 3) is recorded as diverged, and the list goes on;
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

import json
import os
import signal
import statistics
import subprocess
import sys
import time

from absl import app, flags

from sagan_tf.machine import describe_machine

flags.DEFINE_string("spec", None, "The experiment list (JSON).")
flags.DEFINE_string("out_dir", None, "Where the runs, evaluations, grids and the results go.")
flags.DEFINE_bool("report_only", False, "Only rewrite results.md/json and the curve from finished stages.")
flags.DEFINE_string("baseline", None, "Internal: evaluate one baseline in this process.")
flags.mark_flags_as_required(["spec", "out_dir"])
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINES = ("untrained", "pixel_gaussian")
METRICS = ("fid", "kid", "intra_fid")


class SpecError(ValueError):
    """The experiment list is malformed."""


def load_spec(path):
    """Reads and checks an experiment list; returns the dict."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise SpecError(f"Cannot read the experiment list {path}: {error}") from error
    for key in ("gin_files", "num_steps", "seeds", "runs"):
        if key not in spec:
            raise SpecError(f"The experiment list {path} has no {key!r}.")
    names = [run.get("name") for run in spec["runs"]]
    if not names or any(not name or "/" in name for name in names) or len(set(names)) != len(names):
        raise SpecError(f"Runs need unique names without '/'. Received: {names}")
    unknown = set(spec.get("baselines", ())) - set(BASELINES)
    if unknown:
        raise SpecError(f"Unknown baselines {sorted(unknown)}; expected some of {list(BASELINES)}.")
    curve = spec.get("curve")
    if curve and curve.get("run") not in names:
        raise SpecError(f"The curve's run {curve.get('run')!r} is not one of {names}.")
    return spec


def model_dir(out_dir, name, seed):
    return os.path.join(out_dir, name, f"seed_{seed}")


def latest_step(directory):
    """The step of the latest checkpoint in directory/checkpoints, or 0."""
    state = os.path.join(directory, "checkpoints", "checkpoint")
    if not os.path.exists(state):
        return 0
    with open(state) as f:
        first = f.readline()  # model_checkpoint_path: "ckpt-<step>"
    return int(first.strip().rsplit("-", 1)[-1].rstrip('"'))


def _read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def _write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
    os.replace(path + ".tmp", path)


def _process_cpu_seconds(pid):
    """User + system CPU seconds of a live process (all its threads), from /proc; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(cmd, log_path, on_tick=None, tick_seconds=30.0):
    """Runs a command with its output appended to log_path; returns (exit code, seconds).

    on_tick(wall_seconds, cpu_seconds) is called every tick_seconds while the command runs and once
    at its end, so its cost is on disk even if this process is killed outright. If this process is
    stopped (SIGTERM, Ctrl-C) the command gets SIGTERM and is waited for, so a training run saves
    its checkpoint before the list stops."""
    start = time.time()
    cpu_start = _children_cpu_seconds()
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        cpu = 0.0
        try:
            while True:
                try:
                    code = process.wait(timeout=tick_seconds)
                    break
                except subprocess.TimeoutExpired:
                    live = _process_cpu_seconds(process.pid)
                    cpu = live if live is not None else (time.time() - start) * os.cpu_count()
                    if on_tick:
                        on_tick(time.time() - start, cpu)
        except BaseException:
            process.send_signal(signal.SIGTERM)
            process.wait()
            raise
        finally:
            if on_tick and process.returncode is not None:
                on_tick(time.time() - start, max(cpu, _children_cpu_seconds() - cpu_start))
    return code, time.time() - start


def _children_cpu_seconds():
    times = os.times()
    return times.children_user + times.children_system


def _stop_on_sigterm():
    def handler(signum, frame):
        del frame
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def train_run(spec, run, seed, directory):
    """Trains one run to the budget (resuming); returns its state dict (status, train_seconds)."""
    state_path = os.path.join(directory, "runner.json")
    state = _read_json(state_path, {"status": "new", "train_seconds": 0.0})
    if state["status"] in ("trained", "diverged") or latest_step(directory) >= spec["num_steps"]:
        state["status"] = "diverged" if state["status"] == "diverged" else "trained"
        state["step"] = max(latest_step(directory), state.get("step", 0))
        return state
    os.makedirs(directory, exist_ok=True)
    params = [f"train.num_steps = {spec['num_steps']}", f"train.seed = {seed}"]
    curve = spec.get("curve")
    if curve and curve["run"] == run["name"] and curve.get("seed", 0) == seed:
        params += [f"train.eval_every = {curve['eval_every']}", f"Evaluator.num_samples = {curve['num_samples']}",
                   f"Evaluator.classifier = '{spec.get('evaluation', {}).get('classifier', 'port')}'"]
    params += run.get("gin_params", [])
    cmd = [sys.executable, "-m", "sagan_tf.train", f"--model_dir={directory}"]
    cmd += [f"--gin_file={f}" for f in [*spec["gin_files"], *run.get("gin_files", [])]]
    cmd += [f"--gin_param={p}" for p in params]
    print(f"[{run['name']} seed {seed}] training from step {latest_step(directory)} to {spec['num_steps']}", flush=True)
    wall_before, cpu_before = state["train_seconds"], state.get("train_cpu_seconds", 0.0)
    # Every machine the run trained on (a resumed run may span several): its figures depend on them.
    state["devices"] = [*[d for d in state.get("devices", []) if d != describe_machine()], describe_machine()]

    def record(wall, cpu):  # kept on disk as the run goes: a hard kill loses at most one tick
        state["train_seconds"], state["train_cpu_seconds"] = wall_before + wall, cpu_before + cpu
        _write_json(state_path, state)

    code, _ = _run(cmd, os.path.join(directory, "train.log"), on_tick=record)
    state["step"] = latest_step(directory)
    if code == 0 and state["step"] >= spec["num_steps"]:
        state["status"] = "trained"
    elif code == 3:
        state["status"] = "diverged"
    else:
        _write_json(state_path, state)
        raise RuntimeError(f"Training {directory} stopped with exit code {code}; see {directory}/train.log.")
    _write_json(state_path, state)
    return state


def evaluation_flags(spec):
    evaluation = spec.get("evaluation", {})
    flags_ = [f"--num_samples={evaluation.get('num_samples', 10000)}",
              f"--classifier={evaluation.get('classifier', 'port')}"]
    return flags_ + (["--intra_fid"] if evaluation.get("intra_fid") else [])


def evaluate_run(spec, directory):
    """Evaluates the latest checkpoint into directory/final_eval.json (skipped if it exists)."""
    output = os.path.join(directory, "final_eval.json")
    previous = _read_json(output)
    step = latest_step(directory)  # 0: the checkpoints are not on this machine; a recorded result stands
    if previous is None or (step and previous.get("step") != step):  # none, or of an earlier budget
        cmd = [sys.executable, "-m", "sagan_tf.evaluate", f"--model_dir={directory}", f"--output={output}.part",
               *evaluation_flags(spec)]
        code, seconds = _run(cmd, os.path.join(directory, "eval.log"))
        if code != 0:
            raise RuntimeError(f"Evaluating {directory} failed (exit {code}); see {directory}/eval.log.")
        results = _read_json(output + ".part")
        results["eval_seconds"] = seconds
        _write_json(output, results)
        os.remove(output + ".part")
    return _read_json(output)


def draw_grid(directory, path):
    """One row per class from the latest checkpoint; redrawn when the evaluation is newer."""
    evaluated = os.path.join(directory, "final_eval.json")
    if os.path.exists(path) and not latest_step(directory):
        return  # a recorded run without its checkpoints: its grid stands
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(evaluated):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cmd = [sys.executable, os.path.join(REPO, "tools", "sample.py"), f"--model_dir={directory}",
               f"--output={path}", "--per_class=10"]
        code, _ = _run(cmd, os.path.join(directory, "eval.log"))
        if code != 0:
            raise RuntimeError(f"Drawing {path} failed (exit {code}); see {directory}/eval.log.")


def run_baseline(spec, out_dir, name):
    """Evaluates a no-training baseline in a subprocess into OUT_DIR/baselines/<name>.json."""
    output = os.path.join(out_dir, "baselines", f"{name}.json")
    if not os.path.exists(output):
        os.makedirs(os.path.dirname(output), exist_ok=True)
        cmd = [sys.executable, os.path.abspath(__file__), f"--spec={os.path.abspath(FLAGS.spec)}",
               f"--out_dir={os.path.abspath(out_dir)}", f"--baseline={name}"]
        code, _ = _run(cmd, os.path.join(out_dir, "baselines", "baselines.log"))
        if code != 0:
            raise RuntimeError(f"Baseline {name} failed (exit {code}); see {out_dir}/baselines/baselines.log.")
    return _read_json(output)


class PixelGaussian:
    """Per-class independent Gaussians over pixels, fitted to real images: a no-training baseline.

    Called like a generator: z [B, R * R * C] standard normal, labels [B] -> images [B, R, R, C],
    mean + std * z per pixel of the label's class, clipped to [-1, 1].
    """

    def __init__(self, mean, std):
        import tensorflow as tf

        self.mean, self.std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)  # [K, R, R, C]
        self.dim_z = int(mean[0].size)

    @classmethod
    def fit(cls, batches, num_classes, limit):
        """Per-class pixel mean and std of up to `limit` images from (images, labels) batches."""
        import numpy as np

        sums, squares, counts, seen = None, None, np.zeros(max(num_classes, 1)), 0
        for images, labels in batches:
            images = images.astype(np.float64)
            labels = labels if num_classes else np.zeros(len(images), np.int64)
            if sums is None:
                sums = np.zeros((len(counts), *images.shape[1:]))
                squares = np.zeros_like(sums)
            np.add.at(sums, labels, images)
            np.add.at(squares, labels, images ** 2)
            counts += np.bincount(labels, minlength=len(counts))
            seen += len(images)
            if seen >= limit:
                break
        shape = (-1,) + (1,) * (sums.ndim - 1)
        mean = sums / np.maximum(counts, 1).reshape(shape)
        std = np.sqrt(np.maximum(squares / np.maximum(counts, 1).reshape(shape) - mean ** 2, 0))
        return cls(mean, std)

    def __call__(self, z, labels=None, training=False):
        import tensorflow as tf

        labels = tf.zeros([tf.shape(z)[0]], tf.int32) if labels is None else labels
        mean, std = tf.gather(self.mean, labels), tf.gather(self.std, labels)
        return tf.clip_by_value(mean + std * tf.reshape(z, tf.shape(mean)), -1.0, 1.0)


def evaluate_baseline(spec, name):
    """In this process: builds the baseline `name` and returns its metrics."""
    from sagan_tf import config, restore, trainer
    from sagan_tf.eval import evaluator as evaluator_lib
    from sagan_tf.eval.periodic import evaluation_input

    run = spec["runs"][0]
    config.parse([*spec["gin_files"], *run.get("gin_files", [])],
                 [*run.get("gin_params", []), f"train.seed = {spec['seeds'][0]}"])
    evaluation = spec.get("evaluation", {})
    evaluator = evaluator_lib.Evaluator(num_samples=evaluation.get("num_samples", 10000),
                                        classifier=evaluation.get("classifier", "port"),
                                        intra_fid=evaluation.get("intra_fid", False))
    input_spec = evaluation_input(evaluator.batch_size)
    facts = restore.DataFacts(input_spec.num_classes, input_spec.resolution, input_spec.channels)
    if name == "untrained":
        generator = trainer.build_model(facts).sampling_generator
    else:
        generator = PixelGaussian.fit(evaluator_lib.dataset_batches(input_spec), facts.num_classes,
                                      evaluator.num_samples)
    results = evaluator.evaluate(generator, facts.num_classes, input_spec)
    results["baseline"] = name
    return results


def _spread(values):
    return statistics.stdev(values) if len(values) > 1 else None


def summarise(spec, out_dir):
    """Collects the finished stages into a results dict (per run: seeds, mean and spread)."""
    rows = []
    for run in spec["runs"]:
        seeds = {}
        for seed in spec["seeds"]:
            directory = model_dir(out_dir, run["name"], seed)
            state = _read_json(os.path.join(directory, "runner.json"))
            result = _read_json(os.path.join(directory, "final_eval.json"))
            if state is None:
                continue
            # CPU time over the cores: the wall time on an otherwise idle machine, unaffected by pauses.
            cpu_minutes = state.get("train_cpu_seconds", state["train_seconds"] * os.cpu_count()) / 60
            entry = {"status": state["status"], "train_minutes": cpu_minutes / os.cpu_count(),
                     "train_wall_minutes": state["train_seconds"] / 60,
                     "step": latest_step(directory) or state.get("step", 0), "devices": state.get("devices", [])}
            if result:
                entry.update({k: result.get(k) for k in METRICS})
            seeds[str(seed)] = entry
        finished = [s for s in seeds.values() if s.get("fid") is not None]
        summary = {}
        for key in METRICS:
            values = [s[key] for s in finished if s.get(key) is not None]
            if values:
                summary[key] = {"mean": statistics.fmean(values), "std": _spread(values), "n": len(values)}
        rows.append({"name": run["name"], "title": run.get("title", run["name"]), "seeds": seeds, **summary})
    baselines = {}
    for name in spec.get("baselines", ()):
        result = _read_json(os.path.join(out_dir, "baselines", f"{name}.json"))
        if result:
            baselines[name] = {k: result.get(k) for k in METRICS}
    curve = []
    if spec.get("curve"):
        path = os.path.join(model_dir(out_dir, spec["curve"]["run"], spec["curve"].get("seed", 0)),
                            "eval", "metrics.jsonl")
        if os.path.exists(path):
            with open(path) as f:
                curve = [{k: json.loads(line).get(k) for k in ("step", "fid", "kid")} for line in f if line.strip()]
    return {"description": spec.get("description", ""), "num_steps": spec["num_steps"], "seeds": spec["seeds"],
            "evaluation": spec.get("evaluation", {}), "devices": devices_of(rows), "report_device": describe_machine(),
            "runs": rows, "baselines": baselines, "curve": curve}


def devices_of(rows):
    """{device: number of finished seeds trained on it}, "not recorded" for records without one."""
    counts = {}
    for row in rows:
        for entry in row["seeds"].values():
            if entry["status"] not in ("trained", "diverged"):
                continue
            for name in entry["devices"] or ["not recorded"]:
                counts[name] = counts.get(name, 0) + 1
    return counts


def _cell(summary, key, digits=1):
    if key not in summary:
        return "-"
    mean, std = summary[key]["mean"], summary[key]["std"]
    scale = 1000 if key == "kid" else 1
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if std is not None else "")


def _seed_cell(entry):
    """One seed's FID, or where it stands ("not run", "training", "diverged")."""
    if entry is None:
        return "not run"
    if entry.get("fid") is not None:
        return f"{entry['fid']:.1f}"
    return "training" if entry["status"] in ("new", "training") else entry["status"]


def markdown(results):
    """The results as a markdown table with its budget and device."""
    evaluation = results["evaluation"]
    devices = results["devices"]
    if len(devices) == 1 and "not recorded" not in devices:
        where = f"device: {next(iter(devices))}"
    elif devices:
        where = "devices: " + "; ".join(f"{name} ({count} seed{'s' if count > 1 else ''})"
                                        for name, count in devices.items())
    else:
        where = f"device: {results['report_device']}"
    lines = [f"Budget: {results['num_steps']} generator steps per run, seeds {results['seeds']}; {where}. FID / KID x 1000 / intra-class FID on {evaluation.get('num_samples')} "
             f"generated images against as many real ones, classifier `{evaluation.get('classifier')}`; "
             "mean ± standard deviation over seeds.", "",
             "| run | FID | KID x 1000 | intra-FID | FID per seed | minutes / run (CPU time / cores) |", "|---|---|---|---|---|---|"]
    for row in results["runs"]:
        per_seed = "; ".join(f"{seed}: {_seed_cell(row['seeds'].get(str(seed)))}" for seed in results["seeds"])
        # Minutes of the finished seeds only: a run still training would pull the mean down.
        minutes = [s["train_minutes"] for s in row["seeds"].values() if s["status"] in ("trained", "diverged")]
        lines.append(f"| {row['title']} | {_cell(row, 'fid')} | {_cell(row, 'kid', 2)} | {_cell(row, 'intra_fid')} "
                     f"| {per_seed} | {f'{statistics.fmean(minutes):.0f}' if minutes else '-'} |")
    for name, values in results["baselines"].items():
        cells = [f"{values[k] * (1000 if k == 'kid' else 1):.{2 if k == 'kid' else 1}f}"
                 if values.get(k) is not None else "-" for k in METRICS]
        lines.append(f"| baseline: {name.replace('_', ' ')} | {' | '.join(cells)} | - | 0 |")
    return "\n".join(lines) + "\n"


def plot_curve(curve, path, title):
    """FID against generator steps as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot([p["step"] for p in curve], [p["fid"] for p in curve], marker="o")
    ax.set_xlabel("generator step")
    ax.set_ylabel("FID")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(spec, out_dir):
    results = summarise(spec, out_dir)
    _write_json(os.path.join(out_dir, "results.json"), results)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(results))
    if len(results["curve"]) >= 2:
        curve = spec["curve"]
        plot_curve(results["curve"], os.path.join(out_dir, "fid_curve.png"),
                   f"{curve['run']}, seed {curve.get('seed', 0)}: FID on {curve['num_samples']} samples")
    return results


def main(argv):
    del argv
    try:
        spec = load_spec(FLAGS.spec)
    except SpecError as error:
        print(f"run_experiments: error: {error}", file=sys.stderr)
        sys.exit(2)
    out_dir = FLAGS.out_dir
    os.makedirs(out_dir, exist_ok=True)
    os.environ.setdefault("SAGAN_TF_CACHE", os.path.join(os.path.abspath(out_dir), "cache"))
    if FLAGS.baseline:
        os.makedirs(os.path.join(out_dir, "baselines"), exist_ok=True)  # also when called on its own
        _write_json(os.path.join(out_dir, "baselines", f"{FLAGS.baseline}.json"), evaluate_baseline(spec, FLAGS.baseline))
        return
    if not FLAGS.report_only:
        _stop_on_sigterm()
        for index, seed in enumerate(spec["seeds"]):
            for run in spec["runs"]:
                directory = model_dir(out_dir, run["name"], seed)
                state = train_run(spec, run, seed, directory)
                if state["status"] == "trained":
                    evaluate_run(spec, directory)
                    draw_grid(directory, os.path.join(out_dir, "grids", f"{run['name']}-seed_{seed}.png"))
                report(spec, out_dir)
            if index == 0:
                for name in spec.get("baselines", ()):
                    run_baseline(spec, out_dir, name)
                report(spec, out_dir)
    print(markdown(report(spec, out_dir)))


if __name__ == "__main__":
    app.run(main)
