"""Peak memory of this process, split as Linux accounts it (standard library only; both benchmark sides use it).

`ru_maxrss` is the peak resident set: anonymous memory (heaps, tensors, the allocator's arenas) plus the pages
of mapped files that were touched, mostly shared libraries' code. The second part is clean and backed by its
file, so the kernel can drop it at any time; the first is what a larger batch or model has to fit in. The
kernel keeps no peak of the anonymous part, so `AnonymousPeak` samples it from a background thread.
"""

import resource
import sys
import threading


def peak_rss_gib():
    """The peak resident set size so far (`ru_maxrss`: KiB on Linux, bytes on macOS), in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2 ** 30 if sys.platform == "darwin" else 2 ** 20)


def resident_gib(field="RssAnon"):
    """One field of /proc/self/status (RssAnon, RssFile, VmRSS) in GiB, or None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        return None
    return None


def resident_split():
    """Resident memory now, as {"anonymous_gib": RssAnon, "file_gib": RssFile} (None where /proc has none).

    The benchmarks take it after each stage of a run (framework imported, networks and optimisers built,
    iterations run), which shows where a peak comes from."""
    return {"anonymous_gib": resident_gib("RssAnon"), "file_gib": resident_gib("RssFile")}


class AnonymousPeak:
    """The largest anonymous resident memory seen while it runs, read every `interval` seconds.

        with AnonymousPeak() as peak:
            train()
        peak.gib  # None where /proc/self/status has no RssAnon

    A sample can miss a peak shorter than `interval`; the figure is a lower bound of the true peak.
    """

    def __init__(self, interval=0.005):
        self.interval = interval
        self.gib = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _record(self, value):
        with self._lock:
            if value is not None and (self.gib is None or value > self.gib):
                self.gib = value

    def _sample(self):
        self._record(resident_gib("RssAnon"))

    def split(self):
        """`resident_split()` now, its anonymous part also counted as a sample of the peak."""
        now = resident_split()
        self._record(now["anonymous_gib"])
        return now

    def _watch(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self):
        self._sample()
        self._thread.start()
        return self

    def stop(self):
        """Ends the sampling; returns the peak in GiB (None without RssAnon)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.gib

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
