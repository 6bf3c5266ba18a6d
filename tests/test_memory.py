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
