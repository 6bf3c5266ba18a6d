"""An experiment list (JSON): reading and checking it, and where its runs live on disk."""

import json
import os

from sagan_tf.records import read_json, write_json  # noqa: F401  (the runner's records)

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
    lists = [spec.get("gin_params", []), spec.get("evaluation", {}).get("gin_params", []),
             *(run.get("gin_params", []) for run in spec["runs"])]
    for params in lists:
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise SpecError(f"gin_params must be a list of strings such as \"SAGAN.ema_decay = None\". "
                            f"Received: {params!r}")
    names = [run.get("name") for run in spec["runs"]]
    if not names or any(not name or "/" in name for name in names) or len(set(names)) != len(names):
        raise SpecError(f"Runs need unique names without '/'. Received: {names}")
    unknown = set(spec.get("baselines", ())) - set(BASELINES)
    if unknown:
        raise SpecError(f"Unknown baselines {sorted(unknown)}; expected some of {list(BASELINES)}.")
    for steps in [spec["num_steps"], *(run["num_steps"] for run in spec["runs"] if "num_steps" in run)]:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise SpecError(f"num_steps (the list's, or a run's own) must be a positive integer. Received: {steps!r}")
    for seeds in [spec["seeds"], *(run["seeds"] for run in spec["runs"] if "seeds" in run)]:
        if (not isinstance(seeds, list) or not seeds or len(set(map(repr, seeds))) != len(seeds)
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
            raise SpecError(f"seeds (the list's, or a run's own) must be a non-empty list of distinct integers >= 0. "
                            f"Received: {seeds!r}")
    standing = spec.get("evaluation", {}).get("ema_standing_batches")
    if standing is not None and (isinstance(standing, bool) or not isinstance(standing, int) or standing < 0):
        raise SpecError(f"evaluation's ema_standing_batches must be an integer >= 0. Received: {standing!r}")
    budget = spec.get("budget_cpu_hours")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise SpecError(f"budget_cpu_hours must be a positive number of CPU-hours. Received: {budget!r}")
    curve = spec.get("curve")
    if curve and curve.get("run") not in names:
        raise SpecError(f"The curve's run {curve.get('run')!r} is not one of {names}.")
    return spec


def run_steps(spec, run):
    """A run's generator steps: its own `num_steps` (runs that spend one budget differently, e.g. a smaller
    batch for more steps), else the list's."""
    return run.get("num_steps", spec["num_steps"])


def run_seeds(spec, run):
    """A run's seeds: its own `seeds` (a change that earned more seeds by the list's decision rule), else the
    list's."""
    return run.get("seeds", spec["seeds"])


def all_seeds(spec):
    """Every seed that some run of the list trains: the list's, then the runs' own, in order."""
    seeds = list(spec["seeds"])
    for run in spec["runs"]:
        seeds += [seed for seed in run_seeds(spec, run) if seed not in seeds]
    return seeds


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
