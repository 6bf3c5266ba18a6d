"""The hardware policy (sagan_tf.machine.network_settings): the networks' hardware arguments per machine, its
rule tables against the benchmark's findings, and the train command applying it once (gin bindings, start-up
line, the run's model_config.json)."""

import os
import subprocess
import sys

import gin
import pytest

from sagan_tf import machine, trainer
from sagan_tf.layers import conv_grad

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AVX2 = machine.Hardware(accelerator=False, onednn=True, avx512_kernels=False)
AVX512 = machine.Hardware(accelerator=False, onednn=True, avx512_kernels=True)


@pytest.mark.parametrize("hardware, expected", [
    (machine.Hardware(accelerator=True, onednn=True, avx512_kernels=True), "onednn"),  # GPU/TPU kernels
    (machine.Hardware(accelerator=False, onednn=False, avx512_kernels=False), "onednn"),  # Eigen: not measured
    (machine.Hardware(accelerator=False, onednn=False, avx512_kernels=True), "onednn"),
    (AVX2, machine.AVX2_RULES),
    (AVX512, machine.AVX512_RULES),
])
def test_auto_per_hardware(hardware, expected):
    settings = machine.network_settings(hardware)
    assert settings.filter_gradient == expected and settings.fused_resampling is True
    assert "auto" in settings.reason
    for forced in ("onednn", "matmul"):
        assert machine.network_settings(hardware, forced).filter_gradient == forced
    assert machine.network_settings(hardware, fused_resampling=False).fused_resampling is False


def test_the_rule_tables_pick_what_the_benchmark_measured():
    def rule(table, height, c_in, c_out, k):
        return conv_grad.use_matmul_filter_gradient(table, height, height, c_in, c_out, k)

    # AVX2 kernels: the large 3x3 convolutions of the 64- and 128-pixel configs, 1x1 from 64x64.
    avx2 = machine.AVX2_RULES
    assert rule(avx2, 128, 64, 64, 3) and rule(avx2, 32, 256, 256, 3)
    assert rule(avx2, 64, 128, 16, 1) and not rule(avx2, 32, 64, 8, 1)
    assert not rule(avx2, 16, 64, 64, 3) and not rule(avx2, 32, 64, 64, 3)
    assert rule(avx2, 8, 1024, 1024, 3) and not rule(avx2, 8, 256, 256, 3)
    # AVX-512 kernels: oneDNN's own filter gradient for the large 3x3 ones; 1x1 from 32x32.
    avx512 = machine.AVX512_RULES
    assert not rule(avx512, 128, 64, 64, 3) and rule(avx512, 32, 64, 8, 1) and not rule(avx512, 16, 64, 8, 1)
    assert rule(avx512, 4, 1024, 1024, 3) and not rule(avx512, 16, 1024, 1024, 3)
    for table in (avx2, avx512):  # valid arguments of the layers
        assert conv_grad.check_filter_gradient(table) == table
        # stride-2 4x4 (fused resampling; the high-resolution side): 16x16 and 8x8 with 512 channels or more
        stride2 = lambda height, c_in, c_out: conv_grad.use_matmul_filter_gradient(  # noqa: E731
            table, height, height, c_in, c_out, 4, stride=2)
        assert stride2(8, 1024, 1024) and stride2(16, 512, 512)
        assert not stride2(32, 256, 256) and not stride2(16, 256, 256) and not stride2(32, 512, 512)


def test_settings_describe_themselves_and_bad_modes_are_named():
    assert machine.network_settings(AVX2, "matmul").describe() == (
        "fused resampling convolutions on; convolution filter gradients: matrix products (forced)")
    assert "TensorFlow's kernels (auto: oneDNN off)" in machine.network_settings(
        machine.Hardware(onednn=False)).describe()
    assert "AVX-512" in machine.network_settings(AVX512).describe()
    assert "resampling convolutions off" in machine.network_settings(AVX2, fused_resampling=False).describe()
    with pytest.raises(ValueError, match="filter_gradient='fast'"):
        machine.network_settings(AVX2, "fast")


def _bound(key):
    return gin.query_parameter(key)


def test_apply_hardware_policy_binds_the_networks_and_the_config_wins_over_auto(monkeypatch):
    monkeypatch.setattr(trainer, "detect_hardware", lambda strategy=None: AVX512)
    settings = trainer.apply_hardware_policy(None)
    assert settings.filter_gradient == machine.AVX512_RULES
    for network in trainer.NETWORKS:
        assert _bound(f"{network}.filter_gradient") == machine.AVX512_RULES
        assert _bound(f"{network}.fused_resampling") is True
    gin.clear_config()
    gin.parse_config(["Generator.filter_gradient = 'matmul'", "Discriminator.fused_resampling = False"])
    settings = trainer.apply_hardware_policy(None)  # auto: the config's bindings stay
    assert settings.filter_gradient == "matmul" and "config" in settings.reason
    assert _bound("Generator.filter_gradient") == "matmul"
    assert _bound("Discriminator.filter_gradient") == machine.AVX512_RULES
    assert _bound("Discriminator.fused_resampling") is False and _bound("Generator.fused_resampling") is True
    settings = trainer.apply_hardware_policy(None, "onednn", fused_resampling=True)  # forced: over the config
    assert settings.filter_gradient == "onednn" and settings.reason == "forced"
    assert _bound("Generator.filter_gradient") == "onednn" and _bound("Discriminator.fused_resampling") is True


@pytest.mark.parametrize("onednn, expected", [("0", "onednn"), ("1", "AVX2_RULES")])
def test_detected_hardware_follows_the_state_tensorflow_started_with(onednn, expected):
    """With oneDNN off (TensorFlow's default on CPUs without AVX-512, outside the train command) "auto" keeps
    TensorFlow's gradient for every shape; with it on and its kernels capped at AVX2, the AVX2 rules."""
    code = ("from sagan_tf import machine, trainer; s = machine.network_settings(trainer.detect_hardware()); "
            "print('AVX2_RULES' if s.filter_gradient == machine.AVX2_RULES else s.filter_gradient)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected
