"""The stages of an experiment list, each in its own process and each skipped when its output exists:
training (`python -m sagan_tf.train`), evaluation (`python -m sagan_tf.evaluate`), a grid
(`python -m lab.sampling`) and the no-training baselines (`python -m lab.experiments.baselines`). The
commands run in the checkout, with the lab's folder (tools/) on their path for the lab's own modules."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time

from lab import records
from lab.experiments.spec import latest_step, read_json, run_steps, write_json
from lab.machine import description as describe_machine

TOOLS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO = os.path.dirname(TOOLS)


def _environment():
    """This environment with tools/ first on PYTHONPATH, so `python -m lab....` finds the lab."""
    path = [TOOLS, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


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
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=_environment())
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


def stop_on_sigterm():
    def handler(signum, frame):
        del frame
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def gin_arguments(spec, run):
    """(gin files, bindings) a run of the list trains with: the list's, then the run's."""
    return ([*spec["gin_files"], *run.get("gin_files", [])],
            [*spec.get("gin_params", []), *run.get("gin_params", [])])


def train_run(spec, run, seed, directory):
    """Trains one run to the budget (resuming); returns its state dict (status, train_seconds)."""
    state_path = os.path.join(directory, "runner.json")
    state = read_json(state_path, {"status": "new", "train_seconds": 0.0})
    num_steps = run_steps(spec, run)
    start_step = latest_step(directory)  # the last checkpoint's step: where this start resumes from
    if state["status"] in ("trained", "diverged") or start_step >= num_steps:
        state["status"] = "diverged" if state["status"] == "diverged" else "trained"
        state["step"] = max(start_step, state.get("step", 0))
        return state
    if state.get("step", 0) > start_step:  # e.g. a run folder copied without its checkpoints
        raise RuntimeError(
            f"{state_path} records step {state['step']} but the last checkpoint in {directory} is at step "
            f"{start_step}: its checkpoints are missing (training would start again and add to its recorded CPU time).")
    os.makedirs(directory, exist_ok=True)
    params = [f"train.num_steps = {num_steps}", f"train.seed = {seed}"]
    curve = spec.get("curve")
    if curve and curve["run"] == run["name"] and curve.get("seed", 0) == seed:
        params += [f"train.eval_every = {curve['eval_every']}", f"Evaluator.num_samples = {curve['num_samples']}",
                   f"Evaluator.classifier = '{spec.get('evaluation', {}).get('classifier', 'port')}'",
                   *spec.get("evaluation", {}).get("gin_params", [])]
    gin_files, gin_params = gin_arguments(spec, run)
    params += gin_params
    cmd = [sys.executable, "-m", "sagan_tf.train", f"--model_dir={directory}"]
    cmd += [f"--gin_file={f}" for f in gin_files]
    cmd += [f"--gin_param={p}" for p in params]
    print(f"[{run['name']} seed {seed}] training from step {start_step} to {num_steps}", flush=True)
    wall_before, cpu_before = state["train_seconds"], state.get("train_cpu_seconds", 0.0)
    machine, commit = describe_machine(), records.commit()  # of this start, read before it trains
    # Every machine and commit the run trained on (a resumed run may span several): its figures depend on them.
    for key, value in (("devices", machine), ("commits", commit)):
        state[key] = [*[v for v in state.get(key, []) if v != value], value]  # once each, this one last
    state["command"] = shlex.join([os.path.basename(sys.executable), *cmd[1:]])
    # One entry per start of the train command, kept up to date at every tick like the totals (a stopped or killed
    # start keeps its entry): its steps, CPU and wall time, the cores it could use and the matmul rate measured just
    # before, so that the CPU time per step of each start can be read against the machine's speed then.
    segment = {"from_step": start_step, "to_step": start_step, "cpu_seconds": 0.0,
               "wall_seconds": 0.0, "cpu_seconds_per_step": None, "cores": _cores(),
               "matmul_gflops": machine_speed(), "machine": machine, "commit": commit}
    state.setdefault("segments", []).append(segment)

    def reached():  # the segment's end so far: the last checkpoint, and the CPU time per step up to now
        state["step"] = segment["to_step"] = latest_step(directory)
        steps = segment["to_step"] - segment["from_step"]
        segment["cpu_seconds_per_step"] = segment["cpu_seconds"] / steps if steps > 0 else None

    def record(wall, cpu):  # kept on disk as the run goes: a hard kill loses at most one tick
        state["train_seconds"], state["train_cpu_seconds"] = wall_before + wall, cpu_before + cpu
        segment["wall_seconds"], segment["cpu_seconds"] = wall, cpu
        reached()
        write_json(state_path, state)

    try:
        code, _ = _run(cmd, os.path.join(directory, "train.log"), on_tick=record)
    finally:  # also when the list is stopped: the command saved a checkpoint before it ended
        reached()
        write_json(state_path, state)
    state["precisions"] = trained_precisions(os.path.join(directory, "train.log"))
    if code == 0 and state["step"] >= num_steps:
        state["status"] = "trained"
    elif code == 3:
        state["status"] = "diverged"
    else:
        write_json(state_path, state)
        raise RuntimeError(f"Training {directory} stopped with exit code {code}; see {directory}/train.log.")
    write_json(state_path, state)
    return state


def _cores():
    """The cores this process may run on (a list run under `taskset` passes its pinning to its commands)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_speed(timeout=120):
    """{"float32": GFLOP/s, "bfloat16": GFLOP/s or None}: a 2048^3 matmul on the cores this process may use (a run
    pinned with taskset measures its own core), in a child process, just before a start of training; bfloat16
    only where the CPU has it natively (elsewhere it is emulated and slow). The same machine can run slower on
    one day than another (a shared host). A rate the probe did not print (it failed or timed out) is None."""
    from sagan_tf.machine import native_bf16  # noqa: PLC0415  (no TensorFlow)

    dtypes = ("float32", "bfloat16") if native_bf16() else ("float32",)
    probe = "from lab.machine import matmul_rate\n" + "".join(
        f"print(matmul_rate(2048, 5, {dtype!r}), flush=True)\n" for dtype in dtypes)  # one line per rate
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout,
                             cwd=REPO, env=_environment()).stdout
    except subprocess.TimeoutExpired as stopped:  # the rates printed before the timeout still count
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
    except OSError:
        out = ""
    values = []
    for line in out.splitlines():
        try:
            values.append(float(line))
        except ValueError:
            continue  # a library's own line
    return {dtype: values[i] if i < len(values) else None for i, dtype in enumerate(("float32", "bfloat16"))}


def trained_precisions(log_path):
    """The precisions the train command said it computed in ("float32", "mixed_bfloat16", ...), each once, in
    the order of the log's starts: `train.mixed_precision = 'auto'` is decided by the machine, and only the
    command's start line names the outcome."""
    with open(log_path) as f:
        found = re.findall(r"; precision (\w+)\.$", f.read(), flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def evaluation_flags(spec):
    evaluation = spec.get("evaluation", {})
    flags_ = [f"--num_samples={evaluation.get('num_samples', 10000)}",
              f"--classifier={evaluation.get('classifier', 'port')}"]
    flags_ += [f"--gin_param={p}" for p in evaluation.get("gin_params", [])]
    if evaluation.get("ema_standing_batches") is not None:  # the EMA generator's standing statistics
        flags_.append(f"--ema_standing_batches={evaluation['ema_standing_batches']}")
    return flags_ + (["--intra_fid"] if evaluation.get("intra_fid") else [])


def needs_evaluation(previous, step, standing=None):
    """Whether a run's evaluation record `previous` (None: none) must be made again for its latest checkpoint
    `step` (0: the checkpoints are not on this machine, and a recorded result stands): none yet, one of an
    earlier budget, an EMA generator's scored before records named their commit, which predates the fix of
    the EMA generator's spectral norms (CHANGELOG.md, "Correctness"), or an EMA generator's scored with other
    standing statistics than the list's `standing` (None: the run's own setting)."""
    if previous is None:
        return True
    other_standing = standing is not None and previous.get("ema_standing_batches", 0) != standing
    return bool(step) and (previous.get("step") != step or
                           (previous.get("ema") and ("commit" not in previous or other_standing)))


def evaluate_run(spec, directory):
    """Evaluates the latest checkpoint into directory/final_eval.json (unless `needs_evaluation` says its record
    stands); with
    "generators": ["auto", "raw"] in the spec's evaluation, the raw generator (not its EMA) too, into
    final_eval_raw.json. Returns the first."""
    results = None
    for generator in spec.get("evaluation", {}).get("generators", ["auto"]):
        output = os.path.join(directory, "final_eval.json" if generator == "auto" else f"final_eval_{generator}.json")
        previous = read_json(output)
        step = latest_step(directory)  # 0: the checkpoints are not on this machine; a recorded result stands
        standing = spec.get("evaluation", {}).get("ema_standing_batches") if generator == "auto" else None
        if needs_evaluation(previous, step, standing):
            provenance = {"commit": records.commit(), "machine": describe_machine()}  # the code that scores
            cmd = [sys.executable, "-m", "sagan_tf.evaluate", f"--model_dir={directory}", f"--output={output}.part",
                   f"--generator={generator}", *evaluation_flags(spec)]
            code, seconds = _run(cmd, os.path.join(directory, "eval.log"))
            if code != 0:
                raise RuntimeError(f"Evaluating {directory} failed (exit {code}); see {directory}/eval.log.")
            evaluated = read_json(output + ".part")
            evaluated["eval_seconds"] = seconds
            evaluated.update(provenance)  # a run may be scored at a later commit than it trained at
            write_json(output, evaluated)
            os.remove(output + ".part")
        results = results or read_json(output)
    return results


def draw_grid(directory, path):
    """One row per class from the latest checkpoint; redrawn when the evaluation is newer."""
    evaluated = os.path.join(directory, "final_eval.json")
    if os.path.exists(path) and not latest_step(directory):
        return  # a recorded run without its checkpoints: its grid stands
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(evaluated):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cmd = [sys.executable, "-m", "lab.sampling", f"--model_dir={directory}",
               f"--output={path}", "--per_class=10"]
        code, _ = _run(cmd, os.path.join(directory, "eval.log"))
        if code != 0:
            raise RuntimeError(f"Drawing {path} failed (exit {code}); see {directory}/eval.log.")


def run_baseline(spec, spec_path, out_dir, name):
    """Evaluates a no-training baseline in a subprocess into OUT_DIR/baselines/<name>.json."""
    output = os.path.join(out_dir, "baselines", f"{name}.json")
    if not os.path.exists(output):
        os.makedirs(os.path.dirname(output), exist_ok=True)
        cmd = [sys.executable, "-m", "lab.experiments.baselines", f"--spec={os.path.abspath(spec_path)}",
               f"--out_dir={os.path.abspath(out_dir)}", f"--baseline={name}"]
        code, _ = _run(cmd, os.path.join(out_dir, "baselines", "baselines.log"))
        if code != 0:
            raise RuntimeError(f"Baseline {name} failed (exit {code}); see {out_dir}/baselines/baselines.log.")
    return read_json(output)
