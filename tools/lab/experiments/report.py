"""The results of an experiment list: per run, mean and spread over seeds; the table (results.md), the
record (results.json) and the FID curve (fid_curve.png)."""

import json
import os
import statistics

from lab.experiments.spec import METRICS, latest_step, model_dir, read_json, run_seeds, run_steps, write_json
from lab.machine import description as describe_machine


def _spread(values):
    return statistics.stdev(values) if len(values) > 1 else None


def summarise(spec, out_dir):
    """Collects the finished stages into a results dict (per run: seeds, mean and spread)."""
    rows = []
    for run in spec["runs"]:
        seeds = {}
        for seed in run_seeds(spec, run):
            directory = model_dir(out_dir, run["name"], seed)
            state = read_json(os.path.join(directory, "runner.json"))
            result = read_json(os.path.join(directory, "final_eval.json"))
            if state is None:
                continue
            # The training's own CPU time (the budget's unit), unaffected by pauses, by other processes and by
            # how many cores the run had (the two-CPU-hour runs were pinned to one core each).
            cpu_seconds = state.get("train_cpu_seconds")
            entry = {"status": state["status"],
                     "train_cpu_minutes": None if cpu_seconds is None else cpu_seconds / 60,
                     "train_cpu_seconds": cpu_seconds,
                     "train_wall_minutes": state["train_seconds"] / 60,
                     "step": latest_step(directory) or state.get("step", 0), "devices": state.get("devices", [])}
            if result:
                entry.update({k: result.get(k) for k in METRICS})
            raw = read_json(os.path.join(directory, "final_eval_raw.json"))
            if raw:  # the raw generator of an EMA run, evaluated beside it
                entry.update({f"raw_{k}": raw.get(k) for k in METRICS})
            seeds[str(seed)] = entry
        finished = [s for s in seeds.values() if s.get("fid") is not None]
        summary = {}
        for key in [*METRICS, *(f"raw_{k}" for k in METRICS)]:
            values = [s[key] for s in finished if s.get(key) is not None]
            if values:
                summary[key] = {"mean": statistics.fmean(values), "std": _spread(values), "n": len(values)}
        rows.append({"name": run["name"], "title": run.get("title", run["name"]), "num_steps": run_steps(spec, run),
                     "seed_list": run_seeds(spec, run), "seeds": seeds, **summary})
    baselines = {}
    for name in spec.get("baselines", ()):
        result = read_json(os.path.join(out_dir, "baselines", f"{name}.json"))
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
            "budget_cpu_hours": spec.get("budget_cpu_hours"),
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
    scale = 1000 if key.endswith("kid") else 1
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
    # (summarise gives every row its own steps and seeds: the list's unless the run has its own)
    steps = [row["num_steps"] for row in results["runs"]] or [results["num_steps"]]
    budget = (f"{steps[0]} generator steps per run" if len(set(steps)) == 1 else "generator steps per run: "
              + "; ".join(f"{row['name']} {count}" for row, count in zip(results["runs"], steps)))
    own = [f"{row['name']}: {row['seed_list']}" for row in results["runs"] if row["seed_list"] != results["seeds"]]
    seeds = f"seeds {results['seeds']}" + (f" ({'; '.join(own)})" if own else "")
    lines = [f"Budget: {budget}, {seeds}; {where}. FID / KID x 1000 / intra-class FID on {evaluation.get('num_samples')} "
             f"generated images against as many real ones, classifier `{evaluation.get('classifier')}`; "
             "mean ± standard deviation over seeds.", "",
             "| run | FID | KID x 1000 | intra-FID | FID per seed | training CPU-minutes / run |", "|---|---|---|---|---|---|"]
    for row in results["runs"]:
        per_seed = "; ".join(f"{seed}: {_seed_cell(row['seeds'].get(str(seed)))}" for seed in row["seed_list"])
        # Minutes of the finished seeds only: a run still training would pull the mean down.
        minutes = [s["train_cpu_minutes"] for s in row["seeds"].values()
                   if s["status"] in ("trained", "diverged") and s["train_cpu_minutes"] is not None]
        lines.append(f"| {row['title']} | {_cell(row, 'fid')} | {_cell(row, 'kid', 2)} | {_cell(row, 'intra_fid')} "
                     f"| {per_seed} | {f'{statistics.fmean(minutes):.0f}' if minutes else '-'} |")
    for name, values in results["baselines"].items():
        cells = [f"{values[k] * (1000 if k == 'kid' else 1):.{2 if k == 'kid' else 1}f}"
                 if values.get(k) is not None else "-" for k in METRICS]
        lines.append(f"| baseline: {name.replace('_', ' ')} | {' | '.join(cells)} | - | 0 |")
    if results.get("budget_cpu_hours"):
        lines += ["", _budget_line(results)]
    compared = [row for row in results["runs"] if "raw_fid" in row]
    if compared:  # EMA runs whose raw generator was evaluated too (evaluation "generators": ["auto", "raw"])
        lines += ["", "The EMA generator against the raw one (the trained weights), same checkpoints and evaluation:", "",
                  "| run | FID EMA | FID raw | KID x 1000 EMA | KID x 1000 raw | FID EMA / raw per seed |",
                  "|---|---|---|---|---|---|"]
        for row in compared:
            per_seed = "; ".join(f"{seed}: {entry['fid']:.1f} / {entry['raw_fid']:.1f}" for seed, entry in row["seeds"].items()
                                 if entry.get("fid") is not None and entry.get("raw_fid") is not None)
            lines.append(f"| {row['title']} | {_cell(row, 'fid')} | {_cell(row, 'raw_fid')} | {_cell(row, 'kid', 2)} "
                         f"| {_cell(row, 'raw_kid', 2)} | {per_seed} |")
    return "\n".join(lines) + "\n"


def _budget_line(results):
    """Each finished seed's training CPU time (`train_cpu_seconds` of its runner.json) against the list's budget."""
    budget = results["budget_cpu_hours"]
    cells = []
    for row in results["runs"]:
        for seed, entry in row["seeds"].items():
            if entry["status"] != "trained":
                continue
            seconds = entry.get("train_cpu_seconds")
            hours = "not recorded" if seconds is None else f"{seconds / 3600:.2f} h" + (
                "" if seconds <= budget * 3600 else " (over the budget)")
            cells.append(f"{row['name']} seed {seed}: {hours}")
    return (f"Training CPU time per run (`train_cpu_seconds` in its runner.json), budget {budget:g} CPU-hours: "
            + ("; ".join(cells) if cells else "no finished run") + ".")


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
    write_json(os.path.join(out_dir, "results.json"), results)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(results))
    if len(results["curve"]) >= 2:
        curve = spec["curve"]
        plot_curve(results["curve"], os.path.join(out_dir, "fid_curve.png"),
                   f"{curve['run']}, seed {curve.get('seed', 0)}: FID on {curve['num_samples']} samples")
    return results
