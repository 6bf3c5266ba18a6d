"""The lab's one timing loop: a function called a few times untimed (tracing, caches), then timed call by call."""

import statistics
import time


def time_calls(function, repeats, warmup=1):
    """Seconds of each of `repeats` calls of `function()` after `warmup` untimed calls. `function` must
    block until its work is done (e.g. end with `.numpy()`)."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def median_seconds(function, repeats, warmup=1):
    """The median of `time_calls`."""
    return statistics.median(time_calls(function, repeats, warmup))
