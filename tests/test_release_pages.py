"""sagan_tf.memory: the train command gives back the clean library pages that start-up touched."""

import json
import os
import subprocess
import sys

import pytest

from sagan_tf import actions, memory

def entry(header, anonymous=0, swap=0, private_hugetlb=0, shared_hugetlb=0, fields=None):
    """One mapping of /proc/self/smaps, with the fields the kernel prints around the ones that matter."""
    listed = {"Size": 328, "Rss": 200, "Anonymous": anonymous, "Swap": swap, "Private_Hugetlb": private_hugetlb,
              "Shared_Hugetlb": shared_hugetlb} if fields is None else fields
    return header + "\n" + "".join(f"{name}:{value:>14} kB\n" for name, value in listed.items()) + "VmFlags: rd mr mw me\n"


SMAPS = "".join([
    entry("00400000-00452000 r-xp 00000000 fd:01 1 /usr/lib/libcode.so.2"),  # code, never written: released
    entry("00652000-00653000 r--p 00052000 fd:01 1 /usr/lib/libcode.so.2", anonymous=4),  # relocated constants
    entry("00653000-00654000 rw-p 00053000 fd:01 1 /usr/lib/libcode.so.2"),  # writable data
    entry("00660000-00670000 r--p 00060000 fd:01 1 /usr/lib/libswapped.so", swap=8),  # written, in swap
    entry("00700000-00800000 r--p 00000000 00:0f 9 /anon_hugepage.so", private_hugetlb=2048),  # huge pages
    entry("00900000-00a00000 r--p 00000000 00:0f 9 /lib/libshared_huge.so", shared_hugetlb=2048),
    entry("00b00000-00b10000 r-xp 00000000 fd:01 5 /usr/lib/libnofields.so", fields={"Rss": 4}),  # unknown state
    entry("01000000-01021000 rw-p 00000000 00:00 0 [heap]", anonymous=132),
    entry("7f0000000000-7f0000010000 r--s 00000000 fd:01 2 /usr/lib/libshared.so"),  # a shared mapping
    entry("7f0000020000-7f0000030000 r--p 00000000 fd:01 4 /data/input.bin"),  # a data file, not a library
    entry("7f0000100000-7f0000200000 r--p 00000000 fd:01 3 /opt/my libs/libconst.so.1.2 (deleted)"),  # released
    entry("7f0000300000-7f0000301000 r--p 00000000 00:00 0"),  # anonymous
    entry("7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0 [vvar]"),
])


def test_only_read_only_private_library_mappings_without_written_or_huge_pages_are_released():
    assert memory.releasable_ranges(SMAPS.splitlines(keepends=True)) == [
        (0x00400000, 0x00452000),  # code, never written
        (0x7F0000100000, 0x7F0000200000),  # constants of a library replaced on disk (its inode stays), a space
    ]  # in its path; not: written pages resident or swapped out, huge pages, a mapping whose fields are not
    # printed, writable data, the heap, a shared mapping, a data file, anonymous memory, [vvar]


def test_the_train_command_releases_after_its_imports_and_adds_the_action(monkeypatch):
    from sagan_tf import train

    calls = []
    monkeypatch.setattr(memory, "release_library_pages", lambda: calls.append(1))
    added = train.start_up_pages_actions(release=True)
    assert calls == [1] and [type(a) for a in added] == [actions.ReleaseLibraryPages]
    assert train.start_up_pages_actions(release=False) == [] and calls == [1]


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
