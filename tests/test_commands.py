"""Every command keeps one contract (sagan_tf.commands, docs/commands.md): bad input gives one line
`<command>: error: <what> (<how to fix>)` on stderr, exit 2, nothing created; --help exits 0; output
redirected to a file holds no control characters; the last line names what the command wrote."""

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN, EVALUATE, EXPORT = "sagan_tf.train", "sagan_tf.evaluate", "sagan_tf.export"

# (command, arguments, expected message fragment, paths that must not exist afterwards); every row
# exits with 2. {tmp}: a fresh folder; {file}: an existing file; {empty}: an empty folder; {run}: a
# trained run (the shared tiny run). Arguments that need a trained run use {run}.
TABLE = [
    (TRAIN, ["--gin_file=synthetic.gin"], "--model_dir is required", []),
    (TRAIN, ["--gin_file=nope.gin", "--model_dir={tmp}/r"], "gin file 'nope.gin' not found", ["{tmp}/r"]),
    (TRAIN, ["--model_dir={tmp}/r", "--gin_param=train.num_steps = 4"], "no --gin_file: a run needs a config",
     ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=Generator.base_chanels = 4"],
     "did you mean 'base_channels'", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=RESOLUTION = 16"],
     "A 16x16 generator needs 3 channel multipliers", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={file}"], "is a file, not a folder", []),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--strategy=tpu"], "no TPU found", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--strategy=multi_worker"],
     "needs $TF_CONFIG, which is not set", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--strategy=gpu"],
     "flag --strategy=gpu", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "extra"], "unexpected arguments ['extra']",
     ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=train.mixed_precision = 'fp8'"],
     "train.mixed_precision = 'fp8' is not a precision (bind None, 'auto',", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=train.steps_per_execution = 0"],
     "train.steps_per_execution = 0 is not a whole number >= 1 (bind train.steps_per_execution to a whole number >= 1)", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=train.log_every = -10"],
     "train.log_every = -10 is not a whole number >= 0 or None", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=build_input.global_batch_size = 0"],
     "build_input.global_batch_size = 0 is not positive (bind 1 or more)", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=train.eval_every = 2",
             "--gin_param=Evaluator.num_samples = 1"], "Evaluator.num_samples = 1 with Evaluator.batch_size", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--strategy=mirrored", "--num_cpu_devices=2",
             "--gin_param=build_input.global_batch_size = 3"],
     "The global batch 3 does not divide over 2 replicas (bind build_input.global_batch_size to a multiple of 2)",
     ["{tmp}/r"]),
    (EVALUATE, ["--model_dir={tmp}/none"], "--model_dir {tmp}/none is not a folder", []),
    (EVALUATE, ["--model_dir={empty}"], "is {empty} a sagan_tf training directory?", ["{empty}/eval"]),
    (EVALUATE, ["--model_dir={run}", "--num_samples=-5"], "flag --num_samples=-5", []),
    (EVALUATE, ["--model_dir={run}", "--ema_standing_batches=-1"], "flag --ema_standing_batches=-1", []),
    (EVALUATE, ["--model_dir={run}", "--generator=raw", "--ema_standing_batches=2"],
     "--ema_standing_batches is a setting of the EMA generator, which --generator=raw does not evaluate", []),
    (EVALUATE, ["--model_dir={run}", "--checkpoint=999", "--output={tmp}/m.json"],
     "ckpt-999 does not exist (no {run}/checkpoints/ckpt-999.index; the run has steps 2, 4)", ["{tmp}/m.json"]),
    (EVALUATE, ["--model_dir={run}", "--output={tmp}/m.json", "--gin_param=evaluation_input.sorce = 1"],
     "did you mean 'source'", ["{tmp}/m.json"]),
    (EXPORT, ["--model_dir={run}"], "--export_dir is required", []),
    (EXPORT, ["--model_dir={empty}", "--export_dir={tmp}/e"], "a sagan_tf training directory?", ["{tmp}/e"]),
    (EXPORT, ["--model_dir={run}", "--export_dir={file}"], "is a file, not a folder", []),
    (EXPORT, ["--model_dir={run}", "--export_dir={tmp}/e", "--version=-1"], "flag --version=-1", ["{tmp}/e"]),
    (EXPORT, ["--model_dir={run}", "--export_dir={tmp}/e", "--checkpoint=999"],
     "ckpt-999 does not exist (no {run}/checkpoints/ckpt-999.index; the run has steps 2, 4)", ["{tmp}/e"]),
]

# The tools, run as users type them: `python tools/<name>.py` from the checkout.
SAMPLE, PREPARE, ATTENTION = "tools/sample.py", "tools/prepare_data.py", "tools/visualize_attention.py"
SHAPE_SCORE, SHAPE_CURVE, EVAL_REFERENCE = "tools/shape_score.py", "tools/shape_curve.py", "tools/eval_reference.py"
VERIFY, TIME_TO_QUALITY, SYNC_DOCS = "tools/verify_inception.py", "tools/time_to_quality.py", "tools/sync_docs.py"
RUN_EXPERIMENTS, BENCH_TRAIN, BENCH_EVAL = "tools/run_experiments.py", "tools/bench_train.py", "tools/bench_eval.py"
BENCH_INPUT, BENCH_ATTENTION, BENCH_CONV_GRAD = "tools/bench_input.py", "tools/bench_attention.py", "tools/bench_conv_grad.py"
BENCH_REFERENCE, BENCH_LONG_RANGE = "tools/bench_reference.py", "tools/bench_long_range.py"
TOOLS = [SAMPLE, PREPARE, ATTENTION, SHAPE_SCORE, SHAPE_CURVE, EVAL_REFERENCE, VERIFY, TIME_TO_QUALITY, SYNC_DOCS,
         RUN_EXPERIMENTS, BENCH_TRAIN, BENCH_EVAL, BENCH_INPUT, BENCH_ATTENTION, BENCH_CONV_GRAD, BENCH_REFERENCE,
         BENCH_LONG_RANGE]
SPEC = "tools/experiments/fashion_mnist_ablations.json"

TABLE += [
    (SAMPLE, ["--output={tmp}/g.png"], "pass exactly one of --model_dir and --saved_model", ["{tmp}/g.png"]),
    (SAMPLE, ["--model_dir={empty}", "--output={tmp}/g.png"], "is {empty} a sagan_tf training directory?",
     ["{tmp}/g.png"]),
    (SAMPLE, ["--saved_model={empty}"], "holds no assets/sagan_tf_export.json", ["{empty}/grid.png"]),
    (SAMPLE, ["--model_dir={run}", "--classes=0,42", "--output={tmp}/g.png"], "--classes 42: the model has classes 0-9",
     ["{tmp}/g.png"]),
    (SAMPLE, ["--model_dir={run}", "--classes=cat", "--output={tmp}/g.png"], "is not an integer", ["{tmp}/g.png"]),
    (SAMPLE, ["--model_dir={run}", "--per_class=0", "--output={tmp}/g.png"], "flag --per_class=0", ["{tmp}/g.png"]),
    (PREPARE, ["--output_dir={tmp}/r"], "give exactly one of --folder and --tfds", ["{tmp}/r"]),
    (PREPARE, ["--folder={tmp}/none", "--output_dir={tmp}/r"], "--folder {tmp}/none does not exist", ["{tmp}/r"]),
    (PREPARE, ["--folder={empty}", "--output_dir={tmp}/r"], "has no class sub-folders", ["{tmp}/r"]),
    (PREPARE, ["--folder={empty}", "--noconditional"], "--output_dir is required", []),
    (PREPARE, ["--folder={empty}", "--output_dir={file}"], "is a file, not a folder", []),
    (PREPARE, ["--folder={empty}", "--manual_dir={empty}", "--output_dir={tmp}/r"], "--manual_dir goes with --tfds",
     ["{tmp}/r"]),
    (PREPARE, ["--folder={empty}", "--output_dir={tmp}/r", "--num_shards=0"], "flag --num_shards=0", ["{tmp}/r"]),
    (ATTENTION, [], "--model_dir is required", []),
    (ATTENTION, ["--model_dir={empty}"], "is {empty} a sagan_tf training directory?", ["{empty}/attention.png"]),
    (ATTENTION, ["--model_dir={run}", "--queries=0.5;0.2"], "is not a point 'y,x'", []),
    (ATTENTION, ["--model_dir={run}", "--queries=1.5,0.5"], "lies outside the image", []),
    (ATTENTION, ["--model_dir={run}", "--network=critic"], "flag --network=critic", []),
    (SHAPE_SCORE, [], "--model_dir is required", []),
    (SHAPE_SCORE, ["--model_dir={empty}", "--json={tmp}/s.json"], "is {empty} a sagan_tf training directory?",
     ["{tmp}/s.json"]),
    (SHAPE_SCORE, ["--model_dir={run}", "--per_class=0"], "flag --per_class=0", []),
    (SHAPE_SCORE, ["--model_dir={run}", "--json={empty}"], "--json {empty} is a folder", []),
    (SHAPE_CURVE, [], "--runs is required", []),
    (SHAPE_CURVE, ["--runs={empty}", "--output={tmp}/t.md"], "holds no run.json", ["{tmp}/t.md"]),
    (SHAPE_CURVE, ["--runs={tmp}/none"], "--runs {tmp}/none does not exist", []),
    (SHAPE_CURVE, ["--runs={file}"], "is a file, not a folder", []),
    (EVAL_REFERENCE, ["--output={tmp}/m.json"], "--npz is required", ["{tmp}/m.json"]),
    (EVAL_REFERENCE, ["--npz={tmp}/none.npz", "--output={tmp}/m.json"], "--npz {tmp}/none.npz does not exist",
     ["{tmp}/m.json"]),
    (EVAL_REFERENCE, ["--npz={file}", "--output={tmp}/m.json"], "is not a .npz file", ["{tmp}/m.json"]),
    (EVAL_REFERENCE, ["--npz={file}", "--output={empty}"], "--output {empty} is a folder", []),
    (EVAL_REFERENCE, ["--npz={file}", "--output={tmp}/m.json", "--gin_file=nope.gin"], "gin file 'nope.gin' not found",
     ["{tmp}/m.json"]),
    (VERIFY, ["--torch_python={file}"], "is not an executable", []),
    (VERIFY, ["--torch_python={tmp}/none"], "--torch_python {tmp}/none does not exist", []),
    (VERIFY, ["--weights={tmp}/none.pth"], "--weights {tmp}/none.pth does not exist", []),
    (VERIFY, ["--num_images=0"], "flag --num_images=0", []),
    (VERIFY, ["--fingerprint_out={empty}"], "--fingerprint_out {empty} is a folder", []),
    (TIME_TO_QUALITY, ["--output={tmp}/t"], "--bench is required", ["{tmp}/t.md"]),
    (TIME_TO_QUALITY, ["--bench={tmp}/none.json", "--output={tmp}/t"], "--bench {tmp}/none.json does not exist",
     ["{tmp}/t.md"]),
    (TIME_TO_QUALITY, ["--bench={file}", "--output={tmp}/t"], "is not JSON", ["{tmp}/t.md", "{tmp}/t.png"]),
    (TIME_TO_QUALITY, ["--bench={file}", "--runs={tmp}/none", "--output={tmp}/t"], "--runs {tmp}/none does not exist",
     ["{tmp}/t.md"]),
    (SYNC_DOCS, ["extra"], "unexpected arguments ['extra']", []),
    (SYNC_DOCS, ["--check=maybe"], "flag --check=maybe", []),
    (SYNC_DOCS, ["--chek"], "Unknown command line flag 'chek'", []),
    (RUN_EXPERIMENTS, ["--out_dir={tmp}/o"], "--spec is required", ["{tmp}/o"]),
    (RUN_EXPERIMENTS, ["--spec={tmp}/none.json", "--out_dir={tmp}/o"], "--spec {tmp}/none.json does not exist",
     ["{tmp}/o"]),
    (RUN_EXPERIMENTS, ["--spec={file}", "--out_dir={tmp}/o"], "is not JSON", ["{tmp}/o"]),
    (RUN_EXPERIMENTS, [f"--spec={SPEC}", "--out_dir={file}"], "is a file, not a folder", []),
    (BENCH_TRAIN, ["--gin_file=nope.gin"], "gin file 'nope.gin' not found", []),
    (BENCH_TRAIN, ["--precision=fp16"], "flag --precision=fp16", []),
    (BENCH_TRAIN, ["--gin_param=train.mixed_precision = 'fp8'"], "train.mixed_precision = 'fp8' is not a precision",
     []),
    (BENCH_TRAIN, ["--steps=0"], "flag --steps=0", []),
    (BENCH_TRAIN, ["--json={empty}"], "--json {empty} is a folder", []),
    (BENCH_EVAL, ["--batch_size=0"], "flag --batch_size=0", []),
    (BENCH_EVAL, ["--json={empty}"], "--json {empty} is a folder", []),
    (BENCH_EVAL, ["--onednn=maybe"], "flag --onednn=maybe", []),
    (BENCH_INPUT, ["--batch=0"], "flag --batch=0", []),
    (BENCH_INPUT, ["--num_images=10"], "--num_images=10 is fewer than one --batch=64", []),
    (BENCH_INPUT, ["--batches=-1"], "flag --batches=-1", []),
    (BENCH_ATTENTION, ["--feature_size=0"], "flag --feature_size=0", []),
    (BENCH_ATTENTION, ["--style=bad"], "flag --style=bad", []),
    (BENCH_ATTENTION, ["--json={empty}"], "--json {empty} is a folder", []),
    (BENCH_ATTENTION, ["--batch=64", "--max_batch=32"], "--batch=64 is above --max_batch=32", []),
    (BENCH_CONV_GRAD, ["--shapes=2,8,8"], "five positive integers", []),
    (BENCH_CONV_GRAD, ["--shapes=2,8,8,8,2"], "the kernel size must be odd", []),
    (BENCH_CONV_GRAD, ["--shapes=2,7,8,8,4s2"], "a 4s2 shape needs an even height", []),
    (BENCH_CONV_GRAD, ["--json={empty}"], "--json {empty} is a folder", []),
    (BENCH_CONV_GRAD, ["--repeats=0"], "flag --repeats=0", []),
    (BENCH_REFERENCE, [], "--reference_python is required", []),
    (BENCH_REFERENCE, ["--render={tmp}/none.json"], "--render {tmp}/none.json does not exist", ["{tmp}/none.md"]),
    (BENCH_REFERENCE, ["--render={file}"], "is not JSON", []),
    (BENCH_REFERENCE, ["--reference_python={file}", "--biggan_dir={empty}"], "has no BigGAN.py", []),
    (BENCH_REFERENCE, ["--reference_python={file}", "--biggan_dir={empty}", "--configs=256"],
     "unknown configs ['256']", []),
    (BENCH_LONG_RANGE, ["--seeds=a,b", "--out_dir={tmp}/o"], "is not an integer", ["{tmp}/o"]),
    (BENCH_LONG_RANGE, ["--out_dir={file}"], "is a file, not a folder", []),
    (BENCH_LONG_RANGE, ["--num_steps=0", "--out_dir={tmp}/o"], "flag --num_steps=0", ["{tmp}/o"]),
    (BENCH_LONG_RANGE, ["--seeds=1,1", "--out_dir={tmp}/o"], "needs distinct seeds", ["{tmp}/o"]),
]

BENCH_SERVING = "tools/bench_serving.py"
TOOLS.append(BENCH_SERVING)
TABLE += [
    (BENCH_SERVING, ["--json={tmp}/b.json"], "--saved_model is required", ["{tmp}/b.json"]),
    (BENCH_SERVING, ["--saved_model={empty}", "--json={tmp}/b.json"], "holds no saved_model.pb", ["{tmp}/b.json"]),
    (BENCH_SERVING, ["--saved_model={empty}", "--batch_sizes=1,0"], "--batch_sizes=1,0: each must be at least 1", []),
]

PARITY = "tools/parity_report.py"
TOOLS.append(PARITY)
TABLE += [
    (PARITY, ["--step=1500", "--output={tmp}/p.md"], "--ours is required", ["{tmp}/p.md"]),
    (PARITY, ["--ours={tmp}/none", "--step=1500", "--output={tmp}/p.md"], "--ours {tmp}/none does not exist",
     ["{tmp}/p.md"]),
    (PARITY, ["--ours={empty}", "--step=1500", "--output={tmp}/p.md"], "holds no evaluated run", ["{tmp}/p.md"]),
    (PARITY, ["--ours={empty}", "--step=0", "--output={tmp}/p.md"], "flag --step=0", ["{tmp}/p.md"]),
    (PARITY, ["--ours={empty}", "--against={tmp}/none", "--step=1500", "--output={tmp}/p.md"],
     "--against {tmp}/none does not exist", ["{tmp}/p.md"]),
    (PARITY, ["--ours={empty}", "--step=1500", "--names=one", "--output={tmp}/p.md"],
     "--names=one: give two different labels", ["{tmp}/p.md"]),
    (PARITY, ["--ours={empty}", "--step=1500", "--against_run=aligned", "--output={tmp}/p.md"],
     "--against_run needs --against", ["{tmp}/p.md"]),
    (PARITY, ["--ours={empty}", "--step=1500", "--against={empty}", "--reference={empty}", "--output={tmp}/p.md"],
     "--reference and --against both given", ["{tmp}/p.md"]),
]

SPREAD = "tools/spread_report.py"
TOOLS.append(SPREAD)
TABLE += [
    (SPREAD, ["--groups=deterministic", "--step=1500", "--output={tmp}/s.md"], "--runs is required", ["{tmp}/s.md"]),
    (SPREAD, ["--runs={tmp}/none", "--groups=deterministic", "--step=1500", "--output={tmp}/s.md"],
     "--runs {tmp}/none does not exist", ["{tmp}/s.md"]),
    (SPREAD, ["--runs={empty}", "--groups=a,a", "--step=1500", "--output={tmp}/s.md"],
     "--groups=a,a: give different, non-empty prefixes", ["{tmp}/s.md"]),
    (SPREAD, ["--runs={empty}", "--groups=deterministic", "--step=1500", "--output={tmp}/s.md"],
     "--groups deterministic: 0 run(s) named deterministic_* evaluated at step 1500", ["{tmp}/s.md"]),
    (SPREAD, ["--runs={empty}", "--groups=deterministic", "--step=0", "--output={tmp}/s.md"], "flag --step=0",
     ["{tmp}/s.md"]),
]

AB_REPORT = "tools/ab_report.py"
TOOLS.append(AB_REPORT)
TABLE += [
    (AB_REPORT, ["--baseline=base", "--output={tmp}/t.md"], "--records is required", ["{tmp}/t.md"]),
    (AB_REPORT, ["--records={tmp}/none", "--baseline=base", "--output={tmp}/t.md"], "--records {tmp}/none does not exist",
     ["{tmp}/t.md"]),
    (AB_REPORT, ["--records={empty}", "--baseline=base", "--output={tmp}/t.md"], "no records of the baseline 'base'",
     ["{tmp}/t.md"]),
]

REFERENCE_STEP = "tools/reference_step_check.py"
TOOLS.append(REFERENCE_STEP)
TABLE += [
    (REFERENCE_STEP, [], "give --biggan_dir with --write (the reference half) or --read", []),
    (REFERENCE_STEP, ["--read={tmp}/none.npz"], "--read={tmp}/none.npz does not exist", []),
    (REFERENCE_STEP, ["--read={file}"], "is not a file this tool's reference half wrote", []),
    (REFERENCE_STEP, ["--biggan_dir={empty}", "--write={tmp}/r.npz"], "has no BigGAN.py", ["{tmp}/r.npz"]),
]

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # any control character but tab and newline


def _argv(name):
    """A tool (`tools/x.py`) runs as a script from the checkout, a package command as a module."""
    return [sys.executable, name] if name.endswith(".py") else [sys.executable, "-m", name]


def _id(command):
    return os.path.basename(command).removesuffix(".py").split(".")[-1]


def _command(name, args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}  # multi_worker must find none
    return subprocess.run([*_argv(name), *args], capture_output=True, text=True, cwd=REPO, timeout=600, env=env)


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("commands")
    (root / "a_file").write_text("not a folder")
    (root / "empty").mkdir()
    return {"file": str(root / "a_file"), "empty": str(root / "empty"), "run": str(tiny_run)}


@pytest.mark.parametrize("command, args, fragment, absent", TABLE,
                         ids=[f"{_id(row[0])}-{i}" for i, row in enumerate(TABLE)])
def test_bad_input_is_one_line_and_exit_2(command, args, fragment, absent, places, tmp_path):
    values = {**places, "tmp": str(tmp_path)}
    run_files = sorted(os.listdir(places["run"]))
    result = _command(command, [a.format(**values) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), result.stderr[-2000:]
    assert fragment.format(**values) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for path in absent:
        assert not os.path.exists(path.format(**values)), path
    assert sorted(os.listdir(places["run"])) == run_files  # the run is left as it was


HELP = {TRAIN: "--model_dir", EVALUATE: "--model_dir", EXPORT: "--model_dir", SAMPLE: "--saved_model",
        PREPARE: "--output_dir", ATTENTION: "--queries", SHAPE_SCORE: "--per_class", SHAPE_CURVE: "--runs",
        EVAL_REFERENCE: "--npz", VERIFY: "--torch_python", TIME_TO_QUALITY: "--bench", SYNC_DOCS: "--check",
        RUN_EXPERIMENTS: "--spec", BENCH_TRAIN: "--gin_file", BENCH_EVAL: "--throughput", BENCH_INPUT: "--num_images",
        BENCH_ATTENTION: "--feature_size", BENCH_CONV_GRAD: "--shapes", BENCH_REFERENCE: "--biggan_dir",
        BENCH_LONG_RANGE: "--seeds"}
HELP[BENCH_SERVING] = "--saved_model"
HELP[PARITY] = "--reference"
HELP[REFERENCE_STEP] = "--biggan_dir"
HELP[SPREAD] = "--groups"
HELP[AB_REPORT] = "--baseline"


def test_a_path_flag_starting_with_a_tilde_means_the_home_folder(tmp_path):
    """After `--flag=` the shell leaves `~` as typed: the commands expand it as the shell would at a word's
    start, so that `--model_dir=~/runs/a` is a folder in $HOME and no folder named "~" appears."""
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["HOME"] = str(home)
    for name, args, line in (
            (EXPORT, ["--model_dir=~/runs/none", "--export_dir=~/e"], f"--model_dir {home}/runs/none is not a folder"),
            (EVALUATE, ["--model_dir=~/runs"], f"is {home}/runs a sagan_tf training directory?"),
            (SHAPE_CURVE, ["--runs=~/missing"], f"--runs {home}/missing does not exist")):
        argv = [sys.executable, os.path.join(REPO, name)] if name.endswith(".py") else _argv(name)
        result = subprocess.run([*argv, *args], capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
        assert result.returncode == 2 and line in result.stderr, (name, result.stderr[-2000:])
    assert sorted(os.listdir(tmp_path)) == ["home"] and sorted(os.listdir(home)) == ["runs"]  # no "~", no e/


def test_every_tool_has_rows_and_help():
    assert set(HELP) == {TRAIN, EVALUATE, EXPORT, *TOOLS}
    for command in HELP:
        assert sum(row[0] == command for row in TABLE) >= 3, command


@pytest.mark.parametrize("command, flag", HELP.items(), ids=[_id(c) for c in HELP])
def test_help_exits_0_and_names_the_flags(command, flag):
    result = _command(command, ["--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert flag in result.stdout


def test_redirected_output_has_no_control_characters_and_ends_naming_what_was_written(places, tiny_export,
                                                                                       tiny_raw_evaluation):
    """Train, evaluate and export with stdout and stderr going to files, as in a job or CI log (the suite's
    shared tiny run, its raw evaluation and its export, made that way)."""
    from shared_runs import command_output

    outputs = {}
    for command, folder in ((TRAIN, places["run"]), (EVALUATE, tiny_raw_evaluation), (EXPORT, tiny_export.parent)):
        out, err = command_output(folder)
        assert not CONTROL.search(out + err), (command, CONTROL.search(out + err).group())
        outputs[command] = out.strip().splitlines()
    assert outputs[TRAIN][-3].startswith("Done: steps 0-4 in ")  # then the evaluate and export commands
    assert outputs[TRAIN][-3].endswith(f"Last samples: {places['run']}/samples/step_0000004.png.")
    assert outputs[EVALUATE][-1] == f"Wrote {places['run']}/eval/metrics-ckpt-4-raw.json"
    assert "Classifier: the offline Inception port (--classifier=port)" in "\n".join(outputs[EVALUATE])
    assert outputs[EXPORT][-1].startswith(f"Exported {tiny_export}")


def _redirected(runs, tmp_path):
    """{command: stdout lines} of each command run with stdout and stderr going to files."""
    outputs = {}
    for command, args in runs.items():
        with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
            code = subprocess.run([*_argv(command), *args], stdout=out, stderr=err, cwd=REPO, timeout=600).returncode
        text = (tmp_path / "out.txt").read_text() + (tmp_path / "err.txt").read_text()
        assert code == 0, text[-3000:]
        assert not CONTROL.search(text), (command, CONTROL.search(text).group())
        outputs[command] = (tmp_path / "out.txt").read_text().strip().splitlines()
    return outputs


def test_tools_redirected_output_has_no_control_characters_and_ends_naming_what_was_written(
        places, tiny_sample_grid, tiny_shape_score, tmp_path):
    """sample.py and shape_score.py on the tiny run (trained on the synthetic data; the suite's shared runs of
    them, made that way), and prepare_data.py on a small image folder, output to files."""
    from PIL import Image

    from shared_runs import command_output

    run_files = sorted(os.listdir(places["run"]))
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(120):
            Image.new("RGB", (8, 8), (i, 2 * i, 3)).save(tmp_path / "images" / label / f"{i}.png")
    outputs = _redirected({
        PREPARE: [f"--folder={tmp_path / 'images'}", f"--output_dir={tmp_path / 'records'}", "--num_shards=2"],
    }, tmp_path)
    for command, folder in ((SAMPLE, tiny_sample_grid), (SHAPE_SCORE, tiny_shape_score)):
        out, err = command_output(folder)
        assert not CONTROL.search(out + err), (command, CONTROL.search(out + err).group())
        outputs[command] = out.strip().splitlines()
    assert outputs[PREPARE][-1] == f"Wrote 2 shards to {tmp_path / 'records'} (2 classes)."
    assert "100/240 images written" in outputs[PREPARE]  # plain progress lines, not a bar
    assert outputs[SAMPLE][-1].startswith(f"Wrote {tiny_sample_grid / 'grid.png'}: 2 rows x 5 columns")
    assert (tiny_sample_grid / "grid.png").stat().st_size > 0
    assert outputs[SHAPE_SCORE][-1] == f"Wrote {tiny_shape_score / 'shapes.json'}"
    assert (tiny_shape_score / "shapes.json").exists()
    assert sorted(os.listdir(places["run"])) == run_files


def test_docs_commands_section_lists_every_error_of_the_table():
    text = open(os.path.join(REPO, "docs", "commands.md")).read()
    for command, _, fragment, _ in TABLE:
        if "{" not in fragment:
            assert fragment in text, (command, fragment)
