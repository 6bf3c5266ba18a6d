"""The lab's one machine description: what a figure was measured on.

The one-line description and the CPU features come from `sagan_tf.machine` (the library prints them at
the start of training too); the lab adds the platform, the ISA limit oneDNN runs with and, on request,
the float32 matrix-product rate that bounds every FLOP figure."""

import os
import platform
import re

from sagan_tf import machine as library_machine


def description(isa_limit=False):
    """'AMD EPYC 7B13, AVX-512, 2 cores': CPU model, AVX-512 or not, core count; with `isa_limit`, the
    kernel level oneDNN is held to (ONEDNN_MAX_CPU_ISA) when one is set."""
    text = library_machine.describe_machine()
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") if isa_limit else None
    return text + (f", oneDNN kernels limited to {limit} (ONEDNN_MAX_CPU_ISA)" if limit else "")


def describe(matmul=False):
    """{"description", "cores", "platform", "onednn_max_cpu_isa", <ISA feature>: bool, ...}; with `matmul`,
    "matmul_gflop_per_second" too (imports TensorFlow)."""
    facts = {"description": description(), "cores": os.cpu_count(), "platform": platform.platform(),
             "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), **library_machine.cpu_features()}
    if matmul:
        facts["matmul_gflop_per_second"] = matmul_rate()
    return facts


def slug(text=None):
    """A file name for the machine: 'amd_epyc_7b13_avx_512_2_cores' (the results/ records' names)."""
    return re.sub(r"[^a-z0-9]+", "_", (text or description()).lower()).strip("_")


def matmul_rate(size=4096, repeats=5, dtype="float32"):
    """GFLOP/s of a [size, size] x [size, size] product in `dtype` (float32, bfloat16) on this machine: its
    ceiling in that precision."""
    import tensorflow as tf  # noqa: PLC0415

    from lab.timing import time_calls  # noqa: PLC0415

    a, b = (tf.cast(tf.random.normal([size, size]), dtype) for _ in range(2))
    product = tf.function(tf.matmul)
    seconds = time_calls(lambda: product(a, b).numpy(), repeats)
    return 2 * size ** 3 * repeats / sum(seconds) / 1e9
