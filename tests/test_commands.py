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
TINY = ["--gin_param=Generator.base_channels = 4", "--gin_param=Discriminator.base_channels = 4",
        "--gin_param=build_input.global_batch_size = 4"]

# (command, arguments, expected message fragment, paths that must not exist afterwards); every row
# exits with 2. {tmp}: a fresh folder; {file}: an existing file; {empty}: an empty folder; {run}: a
# trained run (the shared tiny run). Arguments that need a trained run use {run}.
TABLE = [
    (TRAIN, ["--gin_file=synthetic.gin"], "--model_dir is required", []),
    (TRAIN, ["--gin_file=nope.gin", "--model_dir={tmp}/r"], "gin file 'nope.gin' not found", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--gin_param=Generator.base_chanels = 4"],
     "did you mean 'base_channels'", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={file}"], "is a file, not a folder", []),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--strategy=tpu"], "no TPU found", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--strategy=multi_worker"],
     "needs $TF_CONFIG, which is not set", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "--strategy=gpu"],
     "flag --strategy=gpu", ["{tmp}/r"]),
    (TRAIN, ["--gin_file=synthetic.gin", "--model_dir={tmp}/r", "extra"], "unexpected arguments ['extra']",
     ["{tmp}/r"]),
    (EVALUATE, ["--model_dir={tmp}/none"], "--model_dir {tmp}/none is not a folder", []),
    (EVALUATE, ["--model_dir={empty}"], "is {empty} a sagan_tf training directory?", ["{empty}/eval"]),
    (EVALUATE, ["--model_dir={run}", "--num_samples=-5"], "flag --num_samples=-5", []),
    (EVALUATE, ["--model_dir={run}", "--checkpoint=999", "--output={tmp}/m.json"], "999", ["{tmp}/m.json"]),
    (EVALUATE, ["--model_dir={run}", "--output={tmp}/m.json", "--gin_param=evaluation_input.sorce = 1"],
     "did you mean 'source'", ["{tmp}/m.json"]),
    (EXPORT, ["--model_dir={run}"], "--export_dir is required", []),
    (EXPORT, ["--model_dir={empty}", "--export_dir={tmp}/e"], "a sagan_tf training directory?", ["{tmp}/e"]),
    (EXPORT, ["--model_dir={run}", "--export_dir={file}"], "is a file, not a folder", []),
    (EXPORT, ["--model_dir={run}", "--export_dir={tmp}/e", "--version=-1"], "flag --version=-1", ["{tmp}/e"]),
    (EXPORT, ["--model_dir={run}", "--export_dir={tmp}/e", "--checkpoint=999"], "999", ["{tmp}/e"]),
]

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # any control character but tab and newline


def _command(name, args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}  # multi_worker must find none
    return subprocess.run([sys.executable, "-m", name, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, env=env)


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("commands")
    (root / "a_file").write_text("not a folder")
    (root / "empty").mkdir()
    return {"file": str(root / "a_file"), "empty": str(root / "empty"), "run": str(tiny_run)}


@pytest.mark.parametrize("command, args, fragment, absent", TABLE,
                         ids=[f"{row[0].split('.')[-1]}-{i}" for i, row in enumerate(TABLE)])
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


@pytest.mark.parametrize("command", [TRAIN, EVALUATE, EXPORT])
def test_help_exits_0_and_names_the_flags(command):
    result = _command(command, ["--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--model_dir" in result.stdout


def test_redirected_output_has_no_control_characters_and_ends_naming_what_was_written(places, tmp_path):
    """Train, evaluate and export with stdout and stderr going to files, as in a job or CI log."""
    outputs = {}
    runs = {
        TRAIN: ["--gin_file=synthetic.gin", f"--model_dir={tmp_path / 'run'}", "--gin_param=train.num_steps = 2",
                *TINY],
        EVALUATE: [f"--model_dir={places['run']}", "--num_samples=24", "--batch_size=12", "--classifier=port",
                   f"--output={tmp_path / 'metrics.json'}"],
        EXPORT: [f"--model_dir={places['run']}", f"--export_dir={tmp_path / 'export'}"],
    }
    for command, args in runs.items():
        with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
            code = subprocess.run([sys.executable, "-m", command, *args], stdout=out, stderr=err, cwd=REPO,
                                  timeout=600).returncode
        text = (tmp_path / "out.txt").read_text() + (tmp_path / "err.txt").read_text()
        assert code == 0, text[-3000:]
        assert not CONTROL.search(text), (command, CONTROL.search(text).group())
        outputs[command] = (tmp_path / "out.txt").read_text().strip().splitlines()
    assert any(line.startswith("Done: steps 0-2") for line in outputs[TRAIN])
    assert outputs[EVALUATE][-1] == f"Wrote {tmp_path / 'metrics.json'}"
    assert "Classifier: the offline Inception port (--classifier=port)" in "\n".join(outputs[EVALUATE])
    assert outputs[EXPORT][-1].startswith(f"Exported {tmp_path / 'export'}")


def test_docs_commands_section_lists_every_error_of_the_table():
    text = open(os.path.join(REPO, "docs", "commands.md")).read()
    for command, _, fragment, _ in TABLE:
        if "{" not in fragment:
            assert fragment in text, (command, fragment)
