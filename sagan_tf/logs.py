"""A command's log shows sagan_tf's own lines; libraries speak at WARNING and above.

TensorFlow, gin and absl log INFO lines nobody asked for (gin's search for each included file,
TensorFlow's checkpoint sharding times, its C++ start-up lines about CUDA and CPU features, graph
optimizer notes). `quiet_libraries()`, called first in a command's `main` (flags parsed, TensorFlow
not yet imported), silences them unless the user asked for a verbosity (`-v`, `--verbosity`).
No TensorFlow import at module level: it must run before TensorFlow starts.
"""

import os
import re
import sys
import tempfile

from absl import flags
from absl import logging as absl_logging

# TensorFlow's C++ log lines ("I0000 00:00:1796224668.474938    6189 port.cc:153] ...") and absl's note that
# precedes them until absl::InitializeLog runs.
_NATIVE_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWEF]\d{4} \S+\s+\d+ \S+:\d+\] )")


def verbosity_requested():
    """Whether the command line set absl's verbosity (`-v N` or `--verbosity=N`)."""
    return any(name in flags.FLAGS and flags.FLAGS[name].present for name in ("verbosity", "v"))


def quiet_libraries():
    """Library logging at WARNING, TensorFlow's C++ logging at FATAL (TF_CPP_MIN_LOG_LEVEL=3 unless set),
    and TensorFlow imported with its start-up lines dropped; a no-op when a verbosity was requested."""
    if verbosity_requested():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    absl_logging.set_verbosity(absl_logging.WARNING)  # the root logger, which gin and TensorFlow log to
    _import_tensorflow_without_native_lines()


def _import_tensorflow_without_native_lines():
    """Imports TensorFlow with its stderr (file descriptor 2) captured, then passes on every line that is
    not a C++ log line: some are written before TensorFlow reads TF_CPP_MIN_LOG_LEVEL."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401, PLC0415
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            sys.stderr.write("".join(line for line in text.splitlines(keepends=True)
                                     if not _NATIVE_LINE.match(line)))
            sys.stderr.flush()
