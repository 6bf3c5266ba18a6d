"""sagan_tf.logs: library logs quiet at the default verbosity, all of them back with -v."""

import os
import subprocess
import sys

from sagan_tf import logs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMAND = """
import logging, sys
from absl import app
from sagan_tf import logs

def main(argv):
    logs.quiet_libraries()
    logging.getLogger("tensorflow").info("tensorflow info")
    logging.info("gin info")
    logging.warning("a library warning")
    print("sagan_tf: own line", "tensorflow" in sys.modules)

app.run(main)
"""


def _run(*args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", COMMAND, *args], capture_output=True, text=True, env=env,
                          timeout=300, check=True)


def test_native_lines_are_recognised():
    assert logs._NATIVE_LINE.match("I0000 00:00:1796224668.475612    6189 cudart_stub.cc:31] Could not find cuda")
    assert logs._NATIVE_LINE.match("E0000 00:00:1796224772.843659    6189 meta_optimizer.cc:967] remapper failed")
    assert logs._NATIVE_LINE.match("WARNING: All log messages before absl::InitializeLog() is called are written")
    assert not logs._NATIVE_LINE.match("Traceback (most recent call last):")
    assert not logs._NATIVE_LINE.match("sagan_tf.train: config synthetic.gin")


def test_default_verbosity_keeps_warnings_and_own_lines_only():
    result = _run()
    assert result.stdout.strip() == "sagan_tf: own line True"
    assert "a library warning" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "\n".join(lines)  # no INFO line, no TensorFlow C++ start-up line


def test_a_requested_verbosity_shows_library_info():
    result = _run("--verbosity=0")
    assert "tensorflow info" in result.stderr and "gin info" in result.stderr
