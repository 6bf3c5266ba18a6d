"""The package as a user installs it: a built wheel, in a fresh venv, run from an empty folder.

The wheel is built from a copy of the package's files and installed into a venv that reaches the
dependencies through a .pth file (a path line there is not a site folder, so the checkout's editable
install is not loaded): `sagan_tf` comes from the wheel only. It trains 2 steps of a tiny synthetic run
with a shipped gin file, exports it and evaluates it; its plain log holds sagan_tf's lines only.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from inception_weights import requires_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["train.num_steps = 2", "Generator.base_channels = 4", "Discriminator.base_channels = 4",
        "build_input.global_batch_size = 4"]
# The lines `sagan_tf.train` prints itself; any other line comes from a library.
OWN_LINES = ("sagan_tf.train: ", "Training ", "step ", "Done: ", "  Evaluate: ", "  Export: ")
LIBRARY_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|\S*Warning: |WARNING:|INFO:)")


def _run(python, args, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args[:3])} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def _build_wheel(tmp):
    """Builds the wheel from a copy of what the package is made of (no build/ left in the checkout)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment: cannot build the wheel offline")
    source = tmp / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("sagan_tf", "gin"):
        shutil.copytree(os.path.join(REPO, name), source / name, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), source / name)
    _run(sys.executable, ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                          "-w", str(tmp / "dist"), str(source)], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("sagan_tf-*.whl")
    return wheel


def _venv_with_wheel(tmp, wheel):
    """A venv without pip whose site-packages holds the wheel and a .pth line to the dependencies."""
    venv = tmp / "venv"
    _run(sys.executable, ["-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = str(venv / "bin" / "python")
    site = _run(python, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip()
    with open(os.path.join(site, "sagan_tf_test_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, ["-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site, str(wheel)], cwd=tmp)
    return python, site


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, site-packages, wheel, an empty working folder, the train result, model_dir)."""
    tmp = tmp_path_factory.mktemp("package")
    wheel = _build_wheel(tmp)
    python, site = _venv_with_wheel(tmp, wheel)
    work = tmp / "work"
    work.mkdir()
    model_dir = str(tmp / "run")
    train = _run(python, ["-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}"]
                 + [f"--gin_param={p}" for p in TINY], cwd=work)
    return {"python": python, "site": site, "wheel": wheel, "work": work, "train": train, "model_dir": model_dir}


def test_wheel_ships_the_gin_configs_and_the_checkout_is_not_imported(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for name in ("base.gin", "imagenet.gin", "ablations/equal_lr.gin", "experiments/fashion_mnist_quality.gin"):
        assert f"sagan_tf/gin/{name}" in names, f"{name} is not in the wheel"
    assert not any(name.startswith(("gin/", "tests/", "tools/")) for name in names)
    code = ("import sagan_tf, sagan_tf.config as c; print(sagan_tf.__file__); "
            "print(c.resolve_gin_file('experiments/fashion_mnist_quality.gin'))")
    where, gin_file = _run(installed["python"], ["-c", code], cwd=installed["work"]).stdout.split()
    assert where.startswith(installed["site"]) and gin_file.startswith(installed["site"]), (where, gin_file)


def test_installed_package_trains_with_a_shipped_config(installed):
    out = installed["train"].stdout
    checkpoint = re.search(r"Last checkpoint: (\S+?)\.? Last samples: (\S+?)\.?$", out, re.M)
    assert checkpoint, out
    assert os.path.exists(checkpoint.group(1) + ".index"), checkpoint.group(1)
    assert os.path.isfile(checkpoint.group(2)), checkpoint.group(2)
    assert os.path.isfile(os.path.join(installed["model_dir"], "operative_config.gin"))
    assert os.listdir(installed["work"]) == [], "the run wrote into the working folder"


def test_plain_training_log_holds_sagan_tf_lines_only(installed):
    """At the default verbosity: no INFO line of gin or TensorFlow, no C++ log line, no warning."""
    train = installed["train"]
    lines = [line for line in (train.stdout + train.stderr).splitlines() if line.strip()]
    foreign = sorted({line[:160] for line in lines if not line.startswith(OWN_LINES) or LIBRARY_LOG_LINE.match(line)})
    assert not foreign, "lines from other libraries in the training log:\n" + "\n".join(foreign)


def test_installed_package_exports(installed):
    export_dir = os.path.join(os.path.dirname(installed["model_dir"]), "export")
    result = _run(installed["python"], ["-m", "sagan_tf.export", f"--model_dir={installed['model_dir']}",
                                        f"--export_dir={export_dir}"], cwd=installed["work"])
    path = re.search(r"^Exported (\S+)$", result.stdout, re.M).group(1)
    assert os.path.isfile(os.path.join(path, "saved_model.pb")), result.stdout
    assert not [line for line in result.stderr.splitlines() if LIBRARY_LOG_LINE.match(line)], result.stderr


@requires_weights
def test_installed_package_evaluates(installed):
    result = _run(installed["python"], ["-m", "sagan_tf.evaluate", f"--model_dir={installed['model_dir']}",
                                        "--num_samples=24", "--batch_size=12", "--classifier=port"], cwd=installed["work"])
    output = re.search(r"^Wrote (\S+)$", result.stdout, re.M).group(1)
    with open(output) as f:
        metrics = json.load(f)
    assert metrics["step"] == 2 and metrics["fid"] >= 0, metrics
