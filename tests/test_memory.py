"""tools/lab/memory.py: the peak of anonymous memory that the benchmarks sample beside ru_maxrss."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))

from lab import memory  # noqa: E402


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="RssAnon is read from Linux's /proc")
def test_anonymous_peak_sees_an_allocation_that_is_freed_before_it_stops():
    before = memory.resident_gib("RssAnon")
    assert before is not None and before > 0
    with memory.AnonymousPeak(interval=0.001) as peak:
        block = bytearray(256 * 2 ** 20)  # 256 MiB, written so that it is resident
        for i in range(0, len(block), 4096):
            block[i] = 1
        import time

        time.sleep(0.05)
        del block
    after = memory.resident_gib("RssAnon")
    assert peak.gib >= before + 0.2 and peak.gib > after + 0.2, (before, peak.gib, after)
    assert memory.peak_rss_gib() >= peak.gib


@pytest.mark.parametrize("platform, units", [("linux", 2 ** 20), ("darwin", 2 ** 30)])
def test_peak_rss_reads_ru_maxrss_in_the_platforms_unit(monkeypatch, platform, units):
    """ru_maxrss is in KiB on Linux and in bytes on macOS: 1 GiB either way."""
    class Usage:
        ru_maxrss = units

    monkeypatch.setattr(memory.sys, "platform", platform)
    monkeypatch.setattr(memory.resource, "getrusage", lambda who: Usage())
    assert memory.peak_rss_gib() == 1.0


def test_records_name_the_command_so_that_a_shell_reruns_it(monkeypatch):
    """A record's command is the process's argv, quoted for a shell: an argument with spaces stays one."""
    import shlex

    from lab import records

    argv = ["tools/x.py", "--gin_param=train.num_steps = 1500", "--out_dir=/tmp/a b"]
    monkeypatch.setattr(records.sys, "argv", argv)
    command = records.provenance(machine="m")["command"]
    assert shlex.split(command)[1:] == argv


def test_a_stage_reading_counts_in_the_anonymous_peak(monkeypatch):
    """The benchmarks' stage readings are samples too: the peak is never below one of them (a reading can see a
    value between two of the sampling thread's ticks)."""
    values = iter([0.1, 0.1, 0.5, 0.2])  # the sample at start, two readings, the sample at stop
    monkeypatch.setattr(memory, "resident_gib", lambda field="RssAnon": next(values) if field == "RssAnon" else 0.3)
    peak = memory.AnonymousPeak(interval=3600.0)  # no tick in between
    peak.start()
    assert peak.split() == {"anonymous_gib": 0.1, "file_gib": 0.3}
    assert peak.split()["anonymous_gib"] == 0.5
    assert peak.stop() == 0.5
