"""lab.experiments (tools/lab/experiments) and tools/run_experiments.py: the experiment list, its resumable stages, the baselines
and the report."""

import ast
import glob
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from inception_weights import requires_weights
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))  # the lab, as `python tools/x.py` sees it

from lab import experiments as runner  # noqa: E402
from lab import records  # noqa: E402
from lab.experiments import stages  # noqa: E402
from lab.machine import description as describe_machine  # noqa: E402


def _write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def _spec(**changes):
    spec = {"gin_files": ["synthetic.gin"], "num_steps": 2, "seeds": [0, 1],
            "runs": [{"name": "a", "title": "(a) A"}, {"name": "b", "title": "(b) B"}]}
    spec.update(changes)
    return spec


@pytest.mark.parametrize("changes, message", [
    ({"runs": [{"name": "a"}, {"name": "a"}]}, "unique names"),
    ({"runs": [{"name": "x/y"}]}, "unique names"),
    ({"baselines": ["noise"]}, "Unknown baselines"),
    ({"curve": {"run": "c", "eval_every": 1, "num_samples": 2}}, "curve's run 'c'"),
    ({"gin_params": "SAGAN.ema_decay = None"}, "gin_params must be a list"),
    ({"runs": [{"name": "a", "gin_params": [1]}]}, "gin_params must be a list"),
])
def test_spec_errors_name_the_problem(tmp_path, changes, message):
    with pytest.raises(runner.SpecError, match=message):
        runner.load_spec(str(_write(tmp_path / "spec.json", _spec(**changes))))
    spec = _spec()
    del spec["seeds"]
    with pytest.raises(runner.SpecError, match="no 'seeds'"):
        runner.load_spec(str(_write(tmp_path / "spec.json", spec)))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(runner.SpecError, match="Cannot read"):
        runner.load_spec(str(tmp_path / "bad.json"))


def test_shipped_experiment_list_is_valid():
    spec = runner.load_spec(os.path.join(REPO, "tools", "experiments", "fashion_mnist_ablations.json"))
    assert [run["name"] for run in spec["runs"]] == ["a_sagan", "b_no_attention", "c_sn_d_only", "d_equal_lr"]
    assert len(spec["seeds"]) > 1 and spec["evaluation"]["num_samples"] == 10000


def test_every_shipped_list_binds_what_it_names():
    """Each list in tools/experiments and each of its runs: the gin files and bindings parse strictly (a
    misspelt configurable or parameter fails here, not after hours of training)."""
    import gin

    from sagan_tf import config, gin_registry  # noqa: F401  (every configurable)

    paths = sorted(glob.glob(os.path.join(REPO, "tools", "experiments", "*.json")))
    assert len(paths) >= 10
    for path in paths:
        spec = runner.load_spec(path)
        for run in spec["runs"]:
            gin.clear_config()
            gin_files, gin_params = stages.gin_arguments(spec, run)
            config.parse(gin_files, [*gin_params, *spec.get("evaluation", {}).get("gin_params", [])])
    gin.clear_config()
    with pytest.raises(config.ConfigError, match="learning_rat"):
        config.parse(["experiments/fashion_mnist_quality.gin"],
                     ["generator/sagan_tf.optimizers.FusedAdam.learning_rat = 2e-4"])
    gin.clear_config()


# the settings a list's records are compared on: those the two-CPU-hour and parity lists vary
RECORDED_SETTINGS = ("Generator.bias_initialization", "Discriminator.bias_initialization", "Generator.bn_fused",
                     "Generator.base_channels", "build_input.global_batch_size", "SAGAN.ema_decay",
                     "SAGAN.ema_start_step", "SAGAN.ema_standing_batches", "train.mixed_precision",
                     "train.deterministic")


def _operative_settings(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(" = ")
        if name in RECORDED_SETTINGS:
            values[name] = ast.literal_eval(value)
    return values


def test_every_shipped_list_still_trains_what_its_records_trained():
    """A list reruns what its committed records ran, on the settings the lists vary (RECORDED_SETTINGS): for each
    run with records in results/<list>, the list's gin files and bindings parsed today give each setting's value
    in the run's operative_config.gin, or the setting's default where the record has none (a setting added
    after the run). So a recipe file changed after a list ran cannot change those settings of its runs."""
    import gin

    from sagan_tf import Discriminator, Generator, config, gin_registry  # noqa: F401  (every configurable)
    from sagan_tf.data import build_input
    from sagan_tf.models.sagan import SAGAN
    from sagan_tf.trainer import TrainConfig

    owners = {"Generator": Generator, "Discriminator": Discriminator, "SAGAN": SAGAN, "train": TrainConfig,
              "build_input": build_input}

    def default(setting):
        owner, parameter = setting.split(".")
        return inspect.signature(owners[owner]).parameters[parameter].default

    def today(setting):
        try:
            return gin.query_parameter(setting)
        except ValueError:  # unbound: the configurable's default
            return default(setting)

    compared = 0
    for path in sorted(glob.glob(os.path.join(REPO, "tools", "experiments", "*.json"))):
        spec = runner.load_spec(path)
        folder = os.path.join(REPO, "results", os.path.basename(path)[:-len(".json")])
        for run in spec["runs"]:
            for operative in sorted(glob.glob(os.path.join(folder, run["name"], "seed_*", "operative_config.gin"))):
                recorded = _operative_settings(operative)
                gin.clear_config()
                config.parse(*stages.gin_arguments(spec, run))
                for setting in RECORDED_SETTINGS:
                    if setting.startswith("SAGAN.ema_") and setting != "SAGAN.ema_decay" and recorded.get(
                            "SAGAN.ema_decay") is None:
                        continue  # no EMA generator: its settings do nothing
                    expected = recorded.get(setting, default(setting))
                    assert today(setting) == expected, (operative, setting)
                    compared += 1
    gin.clear_config()
    assert compared > 600


def test_latest_step_and_finished_runs_are_not_retrained(tmp_path):
    directory = tmp_path / "a" / "seed_0"
    assert runner.latest_step(str(directory)) == 0
    (directory / "checkpoints").mkdir(parents=True)
    (directory / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-250"\nall_model_checkpoint_paths: "ckpt-250"\n')
    assert runner.latest_step(str(directory)) == 250
    state = runner.train_run(_spec(num_steps=250), {"name": "a"}, 0, str(directory))  # no training launched
    assert state["status"] == "trained"
    _write(directory / "runner.json", {"status": "diverged", "train_seconds": 5.0})
    assert runner.train_run(_spec(num_steps=500), {"name": "a"}, 0, str(directory))["status"] == "diverged"


def test_a_run_may_spend_the_budget_on_its_own_number_of_steps(tmp_path, monkeypatch):
    """A run's own `num_steps` (a smaller batch for more steps) replaces the list's in what trains and in the
    table's budget line; a malformed one is a spec error."""
    for bad in (0, "300", 2.5, True):
        with pytest.raises(runner.SpecError, match="num_steps .* must be a positive integer"):
            runner.load_spec(_write(tmp_path / "spec.json", _spec(runs=[{"name": "a", "num_steps": bad}])))
    directory = tmp_path / "a" / "seed_0"
    checkpoint = _write(directory / "checkpoints" / "checkpoint", "")
    checkpoint.write_text('model_checkpoint_path: "ckpt-250"\n')
    launched = []

    def fake_run(cmd, log_path, on_tick=None):  # what the train command would leave: a checkpoint at its end
        launched.append(cmd)
        steps = next(arg.rsplit(" ", 1)[-1] for arg in cmd if arg.startswith("--gin_param=train.num_steps"))
        checkpoint.write_text(f'model_checkpoint_path: "ckpt-{steps}"\n')
        with open(log_path, "a") as log:
            log.write("Training x: new run; precision float32.\n")
        on_tick(2.0, 5.0)  # the command's wall and CPU seconds at its end
        return 0, 2.0

    monkeypatch.setattr(stages, "_run", fake_run)
    monkeypatch.setattr(stages, "machine_speed", lambda: {"float32": 100.0, "bfloat16": 400.0})
    assert runner.train_run(_spec(num_steps=500), {"name": "a", "num_steps": 250}, 0, str(directory))[
        "status"] == "trained" and not launched  # its own 250 steps are done; the list's 500 do not count
    state = runner.train_run(_spec(num_steps=500), {"name": "a", "num_steps": 300}, 0, str(directory))
    assert "--gin_param=train.num_steps = 300" in launched[0]
    assert state["status"] == "trained" and state["step"] == 300
    # The segment it trained: steps 250 to 300, its CPU time per step and the machine's speed just before.
    segment, = state["segments"]
    assert (segment["from_step"], segment["to_step"], segment["cpu_seconds"]) == (250, 300, 5.0)
    assert segment["cpu_seconds_per_step"] == pytest.approx(0.1) and segment["matmul_gflops"]["bfloat16"] == 400.0

    # A start stopped by SIGTERM/Ctrl-C (the command saved a checkpoint) keeps its segment, appended to the
    # record's earlier ones; a record from before segments gets its first; a failed probe is recorded as None.
    def stopped_run(cmd, log_path, on_tick=None):
        checkpoint.write_text('model_checkpoint_path: "ckpt-320"\n')
        on_tick(3.0, 4.0)
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "_run", stopped_run)
    monkeypatch.setattr(stages, "machine_speed", lambda: None)
    old = {k: v for k, v in json.loads((directory / "runner.json").read_text()).items() if k != "segments"}
    _write(directory / "runner.json", {**old, "status": "training"})
    with pytest.raises(KeyboardInterrupt):
        runner.train_run(_spec(num_steps=500), {"name": "a", "num_steps": 400}, 0, str(directory))
    state = json.loads((directory / "runner.json").read_text())
    segment, = state["segments"]
    assert (segment["from_step"], segment["to_step"], segment["cpu_seconds"], segment["matmul_gflops"]) == (
        300, 320, 4.0, None)
    assert state["train_cpu_seconds"] == pytest.approx(old["train_cpu_seconds"] + 4.0) and state["step"] == 320

    # A hard kill (the session ends; no finally runs) leaves what the last tick wrote: the segment already names
    # the last checkpoint it reached, so the record says which steps its CPU time paid for.
    on_disk = []

    def killed_run(cmd, log_path, on_tick=None):
        checkpoint.write_text('model_checkpoint_path: "ckpt-360"\n')
        on_tick(6.0, 8.0)
        on_disk.append(json.loads((directory / "runner.json").read_text()))
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "_run", killed_run)
    with pytest.raises(KeyboardInterrupt):
        runner.train_run(_spec(num_steps=500), {"name": "a", "num_steps": 400}, 0, str(directory))
    killed, = on_disk
    assert killed["step"] == 360 and (killed["segments"][-1]["from_step"], killed["segments"][-1]["to_step"]) == (
        320, 360)
    assert killed["segments"][-1]["cpu_seconds_per_step"] == pytest.approx(8.0 / 40)
    spec = _spec(num_steps=2, runs=[{"name": "a", "title": "(a) A", "num_steps": 300}, {"name": "b", "title": "(b) B"}])
    assert "Budget: generator steps per run: a 300; b 2, seeds [0, 1];" in runner.markdown(runner.summarise(
        spec, str(tmp_path)))
    assert "Budget: 2 generator steps per run, seeds" in runner.markdown(runner.summarise(_spec(), str(tmp_path)))
    same = _spec(num_steps=2, runs=[{"name": "a", "num_steps": 300}, {"name": "b", "num_steps": 300}])
    assert "Budget: 300 generator steps per run, seeds" in runner.markdown(runner.summarise(same, str(tmp_path)))


def test_recorded_run_without_checkpoints_is_kept(tmp_path):
    """A run list committed without checkpoints (results/.gitignore) resumes elsewhere with its runs done."""
    directory = tmp_path / "a" / "seed_0"
    _write(directory / "runner.json", {"status": "trained", "train_seconds": 60.0, "step": 250})
    recorded = {"step": 250, "fid": 42.0, "kid": 0.01, "intra_fid": 80.0}
    _write(directory / "final_eval.json", recorded)
    grid = tmp_path / "grids" / "a-seed_0.png"
    grid.parent.mkdir()
    Image.new("RGB", (4, 4)).save(grid)
    os.utime(grid, (0, 0))  # a checkout gives files arbitrary times: older than the evaluation here
    spec = _spec(num_steps=250, seeds=[0])
    assert runner.train_run(spec, {"name": "a"}, 0, str(directory))["status"] == "trained"
    assert runner.evaluate_run(spec, str(directory)) == recorded  # no evaluation is launched
    runner.draw_grid(str(directory), str(grid))  # no sampling is launched (it would fail: no checkpoint)
    assert os.path.getmtime(grid) == 0
    row = runner.summarise(spec, str(tmp_path))["runs"][0]
    assert row["seeds"]["0"]["step"] == 250 and row["fid"]["mean"] == 42.0
    ignore = os.path.join(REPO, "results", ".gitignore")
    check = subprocess.run(["git", "check-ignore", "--no-index", "results/x/a/seed_0/checkpoints/ckpt-1.index",
                            "results/x/a/seed_0/runner.json", "results/x/grids/a-seed_0.png"],
                           capture_output=True, text=True, cwd=REPO)
    assert os.path.exists(ignore)
    if check.returncode in (0, 1):  # git is here: checkpoints are ignored, the records are not
        assert check.stdout.split() == ["results/x/a/seed_0/checkpoints/ckpt-1.index"]


def test_unfinished_run_without_its_checkpoints_is_refused(tmp_path, monkeypatch):
    """A run recorded as training to step 250 whose checkpoints are not here (a folder copied without them) is
    refused with one line, not trained again from step 0 on top of its recorded CPU time."""
    directory = tmp_path / "a" / "seed_0"
    _write(directory / "runner.json", {"status": "training", "train_seconds": 60.0, "train_cpu_seconds": 55.0,
                                        "step": 250})
    monkeypatch.setattr(stages, "_run", lambda *args, **kwargs: pytest.fail("training was launched"))
    with pytest.raises(RuntimeError, match="records step 250 but the last checkpoint .* is at step 0"):
        runner.train_run(_spec(num_steps=500), {"name": "a"}, 0, str(directory))
    assert json.loads((directory / "runner.json").read_text())["train_cpu_seconds"] == 55.0


def test_evaluations_made_again_only_when_stale():
    scored = {"step": 5, "ema": False, "commit": "abc"}
    assert stages.needs_evaluation(None, 5) and stages.needs_evaluation(None, 0)
    assert not stages.needs_evaluation(scored, 5) and stages.needs_evaluation(scored, 6)
    assert not stages.needs_evaluation(scored, 0)  # no checkpoints here: the record stands
    assert not stages.needs_evaluation({"step": 5, "ema": False}, 5)  # a raw generator, scored before commits
    assert stages.needs_evaluation({"step": 5, "ema": True}, 5)  # an EMA generator scored before the fix
    assert not stages.needs_evaluation({"step": 5, "ema": True}, 0)
    assert not stages.needs_evaluation({"step": 5, "ema": True, "commit": "abc"}, 5)
    # A list that sets the EMA generator's standing statistics re-scores a record made with other ones.
    assert stages.needs_evaluation({"step": 5, "ema": True, "commit": "abc"}, 5, standing=16)
    assert not stages.needs_evaluation({"step": 5, "ema": True, "commit": "abc", "ema_standing_batches": 16}, 5, 16)
    assert not stages.needs_evaluation({"step": 5, "ema": True, "commit": "abc"}, 0, standing=16)


def test_run_reports_its_cost_while_the_command_runs(tmp_path):
    """A run's minutes are written as it goes, so a hard kill of the runner does not lose them."""
    ticks = []
    burn = "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass\n"
    code, seconds = stages._run([sys.executable, "-c", burn], str(tmp_path / "log"),
                                on_tick=lambda wall, cpu: ticks.append((wall, cpu)), tick_seconds=0.3)
    assert code == 0
    assert len(ticks) >= 3  # at least two while running and one at the end
    walls, cpus = zip(*ticks)
    assert list(walls) == sorted(walls) and walls[-1] == pytest.approx(seconds, abs=0.5)
    assert 0 < max(cpus[:-1]) <= cpus[-1]  # ticks mid-run already saw CPU time of the live process
    assert cpus[-1] >= 1.4


def test_pixel_gaussian_fits_per_class_moments():
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 2, 400)
    images = np.where(labels[:, None, None, None] == 0, -0.5, 0.25) + 0.1 * rng.randn(400, 4, 4, 1)
    batches = [(images[i:i + 100].astype(np.float32), labels[i:i + 100]) for i in range(0, 400, 100)]
    model = runner.PixelGaussian.fit(batches, 2, limit=400)
    assert model.dim_z == 16
    np.testing.assert_allclose(model.mean.numpy()[:, 0, 0, 0], [-0.5, 0.25], atol=0.03)
    np.testing.assert_allclose(model.std.numpy()[:, 1, 2, 0], [0.1, 0.1], atol=0.03)
    samples = model(rng.randn(500, 16).astype(np.float32), np.ones(500, np.int32) * 2 // 2).numpy()
    assert samples.shape == (500, 4, 4, 1) and samples.min() >= -1 and samples.max() <= 1
    assert abs(samples.mean() - 0.25) < 0.02 and abs(samples.std() - 0.1) < 0.02
    clipped = runner.PixelGaussian(np.full((1, 2, 2, 1), 0.9), np.full((1, 2, 2, 1), 1.0))
    assert clipped(np.full((3, 4), 5.0, np.float32)).numpy().max() == 1.0  # unconditional, clipped


def test_report_mean_spread_baselines_and_curve(tmp_path):
    spec = _spec(baselines=["pixel_gaussian"], curve={"run": "a", "seed": 0, "eval_every": 1, "num_samples": 24},
                 runs=[{"name": "a", "title": "(a) A"}, {"name": "b", "title": "(b) B"}, {"name": "c", "title": "(c) C"}])
    for name, seed, fid, devices in (("a", 0, 10.0, ["cpu X, 2 cores"]), ("a", 1, 14.0, ["cpu X, 2 cores"]),
                                     ("b", 0, 30.0, [])):  # b/0: a record older than the device field
        directory = tmp_path / name / f"seed_{seed}"
        _write(directory / "runner.json", {"status": "trained", "train_seconds": 60.0, "train_cpu_seconds": 240.0,
                                           **({"devices": devices} if devices else {})})
        _write(directory / "final_eval.json", {"fid": fid, "kid": fid / 1000, "intra_fid": 2 * fid, "step": 2})
    for seed, fid in ((0, 13.0), (1, 15.0)):  # (a) kept an EMA: its raw generator was evaluated too
        _write(tmp_path / "a" / f"seed_{seed}" / "final_eval_raw.json", {"fid": fid, "kid": fid / 1000, "step": 2})
    _write(tmp_path / "b" / "seed_1" / "runner.json", {"status": "diverged", "train_seconds": 6.0})
    _write(tmp_path / "c" / "seed_0" / "runner.json", {"status": "training", "train_seconds": 6.0})
    _write(tmp_path / "baselines" / "pixel_gaussian.json", {"fid": 200.0, "kid": 0.2, "intra_fid": 250.0})
    (tmp_path / "a" / "seed_0" / "eval").mkdir()
    (tmp_path / "a" / "seed_0" / "eval" / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "fid": f, "kid": 0.1}) + "\n" for s, f in ((0, 300.0), (1, 50.0), (2, 20.0))))
    results = runner.report(spec, str(tmp_path))
    row_a, row_b, _ = results["runs"]
    assert row_a["fid"]["mean"] == pytest.approx(12.0) and row_a["fid"]["std"] == pytest.approx(np.std([10, 14], ddof=1))
    assert row_b["fid"]["n"] == 1 and row_b["fid"]["std"] is None and row_b["seeds"]["1"]["status"] == "diverged"
    assert row_a["seeds"]["0"]["train_cpu_minutes"] == pytest.approx(240 / 60)  # CPU time, whatever the cores
    assert [p["fid"] for p in results["curve"]] == [300.0, 50.0, 20.0]
    # Devices of the finished seeds only (b/1 diverged without a device counts as not recorded; c/0 is training).
    assert results["devices"] == {"cpu X, 2 cores": 2, "not recorded": 2}
    table = (tmp_path / "results.md").read_text()
    assert "; devices: cpu X, 2 cores (2 seeds); not recorded (2 seeds). FID" in table
    assert "| (a) A | 12.0 ± 2.8 | 12.00 ± 2.83 | 24.0 ± 5.7 | 0: 10.0; 1: 14.0 " \
        "| 4 |" in table and "| training CPU-minutes / run |" in table
    # b/1 diverged without a recorded CPU time: the mean is b/0's alone.
    assert "| (b) B | 30.0 | 30.00 | 60.0 | 0: 30.0; 1: diverged | 4 |" in table
    assert "| (c) C | - | - | - | 0: training; 1: not run | - |" in table  # minutes of finished seeds only
    assert "| baseline: pixel gaussian | 200.0 | 200.00 | 250.0 |" in table
    assert "| (a) A | 12.0 ± 2.8 | 14.0 ± 1.4 | 12.00 ± 2.83 | 14.00 ± 1.41 | 0: 10.0 / 13.0; 1: 14.0 / 15.0 |" in table
    assert table.count("| (b) B |") == 1  # no raw evaluation of (b): not in the EMA table
    assert json.loads((tmp_path / "results.json").read_text())["runs"][0]["fid"]["mean"] == pytest.approx(12.0)
    assert Image.open(tmp_path / "fid_curve.png").size[0] > 300


@requires_weights
def test_runner_trains_evaluates_draws_and_resumes(tmp_path):
    spec = {"gin_files": ["synthetic.gin"], "num_steps": 2, "seeds": [0],
            "evaluation": {"num_samples": 24, "classifier": "port"},
            "gin_params": ["Generator.base_channels = 4", "Discriminator.base_channels = 4",  # every run's
                           "train.mixed_precision = None"],
            "runs": [{"name": "tiny", "title": "tiny", "gin_params": ["build_input.global_batch_size = 4"]}]}
    path = _write(tmp_path / "spec.json", spec)
    out_dir = tmp_path / "out"
    cmd = [sys.executable, "tools/run_experiments.py", f"--spec={path}", f"--out_dir={out_dir}"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    directory = out_dir / "tiny" / "seed_0"
    assert runner.latest_step(str(directory)) == 2
    operative = (directory / "operative_config.gin").read_text()
    assert "Generator.base_channels = 4" in operative and "build_input.global_batch_size = 4" in operative
    state = json.loads((directory / "runner.json").read_text())
    assert state["devices"] == [describe_machine()] and state["commits"] == [records.commit()]
    assert state["precisions"] == ["float32"]  # as the train command's start line said
    assert state["command"].startswith("python") and f"-m sagan_tf.train --model_dir={directory}" in state["command"]
    segment, = state["segments"]  # one start of the train command, with the machine's speed measured before it
    assert (segment["from_step"], segment["to_step"]) == (0, 2) and segment["cpu_seconds"] > 0
    assert segment["matmul_gflops"]["float32"] > 0 and segment["cores"] >= 1
    from sagan_tf.machine import native_bf16  # bfloat16 is probed only where it is native
    assert (segment["matmul_gflops"]["bfloat16"] is None) is (not native_bf16())
    evaluation = json.loads((directory / "final_eval.json").read_text())
    assert evaluation["step"] == 2 and evaluation["num_generated"] == 24 and np.isfinite(evaluation["fid"])
    assert evaluation["commit"] == records.commit() and evaluation["machine"] == describe_machine()
    results = json.loads((out_dir / "results.json").read_text())
    assert results["runs"][0]["fid"]["mean"] == pytest.approx(evaluation["fid"])
    assert "| tiny |" in (out_dir / "results.md").read_text() and "| tiny |" in result.stdout
    grid = Image.open(out_dir / "grids" / "tiny-seed_0.png")
    assert grid.size[0] >= 10 * 32 and grid.size[1] >= 10 * 32  # 10 classes x 10 samples
    # A second call finds every stage done: nothing is retrained or re-evaluated.
    logged = (directory / "train.log").read_text().count("\n$ ")
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (directory / "train.log").read_text().count("\n$ ") == logged
    assert json.loads((directory / "final_eval.json").read_text()) == evaluation


def test_evaluation_may_measure_the_ema_generator_s_standing_statistics(tmp_path):
    spec = _spec(evaluation={"num_samples": 24, "ema_standing_batches": 16})
    assert "--ema_standing_batches=16" in stages.evaluation_flags(spec)
    assert not any("standing" in f for f in stages.evaluation_flags(_spec(evaluation={"num_samples": 24})))
    for bad in (-1, 1.5, True, "16"):
        with pytest.raises(runner.SpecError, match="ema_standing_batches must be an integer"):
            runner.load_spec(_write(tmp_path / "spec.json", {**spec, "evaluation": {"ema_standing_batches": bad}}))


def test_table_names_one_device_or_each():
    base = {"num_steps": 2, "seeds": [0], "evaluation": {}, "runs": [], "baselines": {}, "report_device": "here"}
    assert "; device: cpu X, 2 cores. FID" in runner.markdown({**base, "devices": {"cpu X, 2 cores": 3}})
    assert "; devices: not recorded (1 seed). FID" in runner.markdown({**base, "devices": {"not recorded": 1}})
    assert "; device: here. FID" in runner.markdown({**base, "devices": {}})  # nothing finished yet


def test_table_gives_each_finished_run_s_cpu_time_against_the_budget(tmp_path):
    spec = _spec(budget_cpu_hours=2, runs=[{"name": "a", "title": "(a) A"}], seeds=[0, 1, 2])
    for seed, state in ((0, {"status": "trained", "train_seconds": 60.0, "train_cpu_seconds": 6588.0}),
                        (1, {"status": "trained", "train_seconds": 60.0, "train_cpu_seconds": 7416.0}),
                        (2, {"status": "training", "train_seconds": 6.0, "train_cpu_seconds": 12.0})):
        _write(tmp_path / "a" / f"seed_{seed}" / "runner.json", state)
    runner.report(spec, str(tmp_path))
    assert ("Training CPU time per run (`train_cpu_seconds` in its runner.json), budget 2 CPU-hours: a seed 0: "
            "1.83 h; a seed 1: 2.06 h (over the budget).") in (tmp_path / "results.md").read_text()
    runner.report({**spec, "budget_cpu_hours": None}, str(tmp_path))
    assert "budget" not in (tmp_path / "results.md").read_text()
    for bad in (0, -1, "2", True):
        with pytest.raises(runner.SpecError, match="budget_cpu_hours must be a positive number"):
            runner.load_spec(_write(tmp_path / "spec.json", {**spec, "budget_cpu_hours": bad}))


def test_a_run_may_have_its_own_seeds(tmp_path, monkeypatch):
    """A run's own `seeds` (a change that earned a second seed by the list's rule) replace the list's for that run
    alone: what trains, in which order, and its cells in the table; malformed seeds are a spec error."""
    for bad in ([], [0, 0], ["1"], [-1], [True], 1):
        with pytest.raises(runner.SpecError, match="seeds .* must be a non-empty list"):
            runner.load_spec(_write(tmp_path / "spec.json", _spec(runs=[{"name": "a", "seeds": bad}])))
    spec = _spec(seeds=[0], runs=[{"name": "a", "title": "(a) A"}, {"name": "b", "title": "(b) B", "seeds": [0, 1]}])
    trained = []

    def fake_train(spec, run, seed, directory):  # a finished run's records, as the train command leaves them
        trained.append((run["name"], seed))
        state = {"status": "trained", "train_seconds": 60.0, "train_cpu_seconds": 60.0, "step": 2}
        _write(Path(directory) / "runner.json", state)
        _write(Path(directory) / "final_eval.json", {"fid": 10.0 + len(trained), "kid": 0.01, "intra_fid": 20.0})
        return state

    monkeypatch.setattr(runner, "train_run", fake_train)
    monkeypatch.setattr(runner, "evaluate_run", lambda spec, directory: None)
    monkeypatch.setattr(runner, "draw_grid", lambda directory, path: None)
    results = runner.run_list(spec, "spec.json", str(tmp_path / "out"))
    assert trained == [("a", 0), ("b", 0), ("b", 1)]
    table = runner.markdown(results)
    assert "| (a) A | 11.0 |" in table and "| 0: 11.0 |" in table
    assert "| (b) B | 12.5 ± 0.7 |" in table and "| 0: 12.0; 1: 13.0 |" in table
    assert "seeds [0] (b: [0, 1]);" in table  # the budget line names a run's own seeds
