"""sagan_tf.memory: the train command gives back the clean library pages that start-up touched."""

import json
import os
import subprocess
import sys

import pytest

from sagan_tf import actions, memory

SMAPS = """\
00400000-00452000 r-xp 00000000 fd:01 1 /usr/lib/libcode.so
Size:                328 kB
Rss:                 200 kB
Anonymous:             0 kB
00652000-00653000 r--p 00052000 fd:01 1 /usr/lib/libcode.so
Rss:                   4 kB
Anonymous:             4 kB
00653000-00654000 rw-p 00053000 fd:01 1 /usr/lib/libcode.so
Anonymous:             0 kB
01000000-01021000 rw-p 00000000 00:00 0 [heap]
Anonymous:           132 kB
7f0000000000-7f0000010000 r--s 00000000 fd:01 2 /data/shared.bin
Anonymous:             0 kB
7f0000100000-7f0000200000 r--p 00000000 fd:01 3 /usr/lib/libconst.so (deleted)
Anonymous:             0 kB
7f0000300000-7f0000301000 r--p 00000000 00:00 0
Anonymous:             0 kB
7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0 [vvar]
Anonymous:             0 kB
"""


def test_only_read_only_private_file_mappings_without_written_pages_are_released():
    assert memory.releasable_ranges(SMAPS.splitlines(keepends=True)) == [
        (0x00400000, 0x00452000),  # code, never written
        (0x7F0000100000, 0x7F0000200000),  # constants of a file replaced on disk: its inode stays
    ]  # not: relocated constants (copied on write), writable data, the heap, a shared mapping, anonymous, [vvar]


def test_the_action_runs_after_the_first_step_of_the_process_only(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release_library_pages", lambda: calls.append(1))
    action = actions.ReleaseLibraryPages()
    for step in (101, 102, 103):
        result = actions.StepResult(step, start=100, steps_per_execution=1, num_steps=200, outputs={}, reduce=None)
        if action.due(result):
            action(result)
    assert calls == [1]


RELEASE = """
import json, numpy as np, tensorflow as tf
from sagan_tf import memory

def file_gib():
    return [int(l.split()[1]) / 2 ** 20 for l in open("/proc/self/status") if l.startswith("RssFile:")][0]

x = tf.constant(np.random.RandomState(0).normal(size=(2, 16, 16, 8)).astype(np.float32))
w = tf.constant(np.random.RandomState(1).normal(size=(3, 3, 8, 4)).astype(np.float32))
before_values = tf.nn.conv2d(x, w, 1, "SAME").numpy()
before = file_gib()
released = memory.release_library_pages()
after = file_gib()
after_values = tf.nn.conv2d(x, w, 1, "SAME").numpy()  # the released code runs again
print(json.dumps({"before": before, "after": after, "released": released,
                  "same": bool((before_values == after_values).all())}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="Linux's /proc")
def test_released_pages_leave_the_resident_set_and_tensorflow_keeps_working():
    # A fresh process (as the train command), so that a fault there cannot take the suite down.
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["same"]
    assert figures["before"] > 0.1  # TensorFlow's libraries, touched by its import
    assert figures["after"] < figures["before"] / 4, figures
    assert figures["released"] == pytest.approx(figures["before"] - figures["after"], abs=0.01)
