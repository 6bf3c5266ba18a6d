"""What machine a figure was measured on: the CPU model, AVX-512 or not, and the core count."""

import os
import platform


def describe_machine():
    """'AMD EPYC, AVX-512, 2 cores': what sets a run's speed (and its exact figures)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        model = names[0] if names else model
        if any(line.startswith("flags") and " avx512f " in f"{line} " for line in lines):
            model += ", AVX-512"
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"
