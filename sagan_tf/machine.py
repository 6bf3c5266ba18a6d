"""The machine: what a figure was measured on (the CPU model, AVX-512 or not, the core count), and the hardware
policy, which settings of the networks suit it, decided once at the edge.

Two of the networks' arguments are about speed, not results: `fused_resampling` (the blocks' resampling
convolutions as smaller convolutions, `sagan_tf.layers.resampling`) and `filter_gradient` (convolution filter
gradients by TensorFlow's kernels or by matrix products, `sagan_tf.layers.conv_grad`). The library's defaults
do not depend on the machine (fused, TensorFlow's kernels); `network_settings(hardware, filter_gradient)`
is the pure function that picks them for a `Hardware`, and `sagan_tf.trainer.detect_hardware()` describes
the running one. The train command calls both once, binds the result to Generator and Discriminator before they are built
(`sagan_tf.trainer.apply_hardware_policy`) and prints it; the networks' configs record it.

The rule tables below are the data of the "auto" filter gradient: where `tools/bench_conv_grad.py` measured
the matrix products faster than oneDNN's filter gradient, on a 2-core AMD EPYC at both kernel levels (one
exception, named at the stride-2 rule). A rule matches a stride-1 "same" convolution of kernel "1x1" or "kxk"
(3x3 and larger), or a stride-2 4x4 one of the fused resampling forms ("4x4/2", counted on its
high-resolution side), whose input has min_positions <= height * width <= max_positions and
min(C_in, C_out) >= min_channels.
"""

import dataclasses
import os
import platform
from typing import Any


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

PRECISIONS = {"auto": "'auto'", "float32": "None", "bfloat16": "'mixed_bfloat16'"}  # --precision: its gin value
PRECISION_HELP = ("Training precision (default: the config's train.mixed_precision, auto where unbound). auto: "
                  "mixed_bfloat16 where the CPU computes bfloat16 natively (AVX512_BF16, AMX; oneDNN on), on a TPU or on GPUs of "
                  "compute capability >= 8.0, float32 elsewhere; bfloat16: force it (far slower than float32 without "
                  "native bf16).")


def precision_binding(precision):
    """The gin binding of `--precision` (auto, float32, bfloat16)."""
    return f"train.mixed_precision = {PRECISIONS[precision]}"


FILTER_GRADIENT_MODES = ("auto", "onednn", "matmul")  # the policy's choices: network_settings
FILTER_GRADIENT_HELP = ("How the networks' convolutions take their filter gradients (sagan_tf.layers.conv_grad; "
                        "Generator/Discriminator.filter_gradient). auto: the hardware policy's choice "
                        "(sagan_tf.machine.network_settings): matrix products for the shapes where they measured faster than oneDNN's "
                        "kernel (most of them where its kernels stop at AVX2), else TensorFlow's; a gin binding of "
                        "the config wins. onednn / matmul: force one for all.")


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


# oneDNN's kernels stop at AVX2: its filter gradient is a direct kernel, slower than its forward pass.
AVX2_RULES = (
    {"kernel": "1x1", "min_positions": 64 * 64},
    {"kernel": "kxk", "min_positions": 64 * 64, "min_channels": 64},
    {"kernel": "kxk", "min_positions": 32 * 32, "min_channels": 128},
    {"kernel": "kxk", "max_positions": 8 * 8, "min_channels": 512},
    {"kernel": "4x4/2", "max_positions": 16 * 16, "min_channels": 512},
)
# AVX-512 kernels: oneDNN's own filter gradient wins for the large 3x3 convolutions. At both levels its
# stride-2 filter gradient is slow for few positions and many channels: D's blocks that pool 8x8 (ImageNet 64
# and 128) or 16x16 with 512 channels (ImageNet 128), and ImageNet 64's generator block that upsamples 8x8 to
# 16x16. The exception: with AVX-512 kernels ImageNet 128's D at 16x16 (512 channels, batch 16) took 97.8 ms
# by matrix products against oneDNN's 73.6; the rules see no batch, and ImageNet 64's G at 16x16 (batch 32)
# gains more there (207.7 against 302.5 ms).
AVX512_RULES = (
    {"kernel": "1x1", "min_positions": 32 * 32},
    {"kernel": "kxk", "max_positions": 8 * 8, "min_channels": 512},
    {"kernel": "4x4/2", "max_positions": 16 * 16, "min_channels": 512},
)


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the policy looks at. accelerator: a GPU or TPU runs the convolutions; onednn: TensorFlow runs its
    oneDNN kernels on the CPU; avx512_kernels: those kernels are 512-bit (else they stop at AVX2)."""

    accelerator: bool = False
    onednn: bool = True
    avx512_kernels: bool = False


@dataclasses.dataclass(frozen=True)
class NetworkSettings:
    """The networks' hardware arguments (`as_kwargs()` for Generator and Discriminator) and why."""

    fused_resampling: bool
    filter_gradient: Any  # "onednn", "matmul" or a tuple of rules (sagan_tf.layers.conv_grad)
    reason: str

    def as_kwargs(self):
        return {"fused_resampling": self.fused_resampling, "filter_gradient": self.filter_gradient}

    def describe(self):
        """For the train command's start-up line."""
        if self.filter_gradient == "matmul":
            gradients = f"matrix products ({self.reason})"
        elif self.filter_gradient == "onednn":
            gradients = f"TensorFlow's kernels ({self.reason})"
        else:
            gradients = (f"matrix products for the shapes of {len(self.filter_gradient)} rules, else TensorFlow's "
                         f"({self.reason})")
        return (f"fused resampling convolutions {'on' if self.fused_resampling else 'off'}; "
                f"convolution filter gradients: {gradients}")


def network_settings(hardware, filter_gradient="auto", fused_resampling=True):
    """The networks' hardware arguments for `hardware`: `filter_gradient` "onednn" or "matmul" forces that;
    "auto" takes TensorFlow's kernels on a GPU/TPU or with oneDNN off (the rules were measured against oneDNN's
    CPU kernels), else the rule table of oneDNN's kernel level. The resampling convolutions are fused
    everywhere unless `fused_resampling` is False (fewer products at the same result)."""
    if filter_gradient not in FILTER_GRADIENT_MODES:
        raise ValueError(f"`filter_gradient` must be one of {FILTER_GRADIENT_MODES}. "
                         f"Received: `filter_gradient={filter_gradient!r}`")
    if filter_gradient != "auto":
        return NetworkSettings(fused_resampling, filter_gradient, "forced")
    if hardware.accelerator:
        return NetworkSettings(fused_resampling, "onednn", "auto: GPU/TPU")
    if not hardware.onednn:
        return NetworkSettings(fused_resampling, "onednn", "auto: oneDNN off")
    if hardware.avx512_kernels:
        return NetworkSettings(fused_resampling, AVX512_RULES, "auto: the rules of oneDNN's AVX-512 kernels")
    return NetworkSettings(fused_resampling, AVX2_RULES, "auto: the rules of oneDNN's AVX2 kernels")
