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


def cpu_features():
    """{"avx2", "avx512f", "avx512_bf16", "amx_bf16", ...: bool} of this CPU (all False where unknown)."""
    names = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return {name: name in flags for name in names}


def isa_limit_allows_bf16(limit):
    """Whether oneDNN's ISA limit (ONEDNN_MAX_CPU_ISA: "AVX2", "AVX512_CORE_BF16", "ALL", ...) keeps its native
    bfloat16 kernels: the AVX-512 BF16, FP16, AVX10 and AMX levels do; AVX2 and plain AVX-512 levels do not."""
    limit = (limit or "ALL").upper()
    return limit in ("ALL", "DEFAULT") or any(tag in limit for tag in ("BF16", "FP16", "AMX", "AVX10"))


def isa_limit_allows_avx512(limit):
    """Whether oneDNN's ISA limit (ONEDNN_MAX_CPU_ISA) keeps its 512-bit kernels: every AVX-512, AVX10 and AMX
    level does; "AVX2" and lower levels do not."""
    limit = (limit or "ALL").upper()
    return limit in ("ALL", "DEFAULT") or any(tag in limit for tag in ("AVX512", "AMX", "AVX10"))


def avx512_kernels():
    """Whether oneDNN runs 512-bit kernels here: the CPU has AVX-512 and ONEDNN_MAX_CPU_ISA does not cap it below."""
    return cpu_features()["avx512f"] and isa_limit_allows_avx512(os.environ.get("ONEDNN_MAX_CPU_ISA"))


def native_bf16():
    """Whether the CPU computes bfloat16 natively (AVX512_BF16 or AMX) and oneDNN may use it
    (ONEDNN_MAX_CPU_ISA): only then is bf16 fast."""
    features = cpu_features()
    return (features["avx512_bf16"] or features["amx_bf16"]) and isa_limit_allows_bf16(
        os.environ.get("ONEDNN_MAX_CPU_ISA"))


ONEDNN_HELP = ("TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS, read once when TensorFlow starts). auto: on "
               "unless TF_ENABLE_ONEDNN_OPTS is set (TensorFlow leaves them off on CPUs without AVX-512, where they "
               "are faster); on / off: force.")

FILTER_GRADIENT_MODES = ("auto", "onednn", "matmul")  # sagan_tf.layers.conv_grad.set_filter_gradient
FILTER_GRADIENT_HELP = ("How convolution filter gradients are computed (sagan_tf.layers.conv_grad). auto: as matrix "
                        "products for the shapes where they measured faster than oneDNN's kernel (most of them "
                        "where its kernels stop at AVX2), else TensorFlow's; onednn / matmul: force one for all.")


def set_onednn(mode):
    """Sets TF_ENABLE_ONEDNN_OPTS for `--onednn=auto|on|off` (call before TensorFlow is imported: it reads the
    variable once); returns where the value came from, for the start-up line."""
    if mode == "auto":
        if "TF_ENABLE_ONEDNN_OPTS" in os.environ:
            return "from the environment"
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
        return "--onednn=auto"
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if mode == "on" else "0"
    return f"--onednn={mode}"
