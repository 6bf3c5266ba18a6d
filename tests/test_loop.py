"""The training loop and its actions: intervals, order, start and end, and a run's stored Keras config as
the source the run is read back from."""

import os
import re

import pytest
import tensorflow as tf

from sagan_tf import actions, config, gin_registry, machine, restore, trainer  # noqa: F401  (gin_registry: configurables)


class Recorder(actions.Action):
    def __init__(self, every, log, name):
        self.every, self.log, self.name = every, log, name

    def begin(self, start):
        self.log.append((self.name, "begin", start))

    def __call__(self, result):
        self.log.append((self.name, result.step, result.value("d_loss")))

    def end(self, step, preempted):
        self.log.append((self.name, "end", step))


def fake_loop(num_steps, steps_per_execution, recorders, start=0, fail_at=None):
    state = {"step": start}

    def step_fn():
        state["step"] += steps_per_execution
        if state["step"] == fail_at:
            raise RuntimeError("boom")
        return {"d_loss": float(state["step"]), "d_real": 1.0, "d_fake": 0.0}

    loop = trainer.TrainingLoop(step_fn, lambda: state["step"], float, num_steps, steps_per_execution, recorders)
    return loop.run(start)


def test_train_settings_take_none_where_it_means_never_or_all_and_name_a_bad_one():
    import numpy as np

    from sagan_tf.gin_files import ConfigError

    settings = trainer.TrainConfig(input_spec=None, num_steps=1e4, log_every=None, keep_checkpoints=None,
                                   checkpoint_every=np.int64(6))
    assert (settings.num_steps, settings.checkpoint_every) == (10_000, 6) and type(settings.num_steps) is int
    assert settings.log_every is None and settings.keep_checkpoints is None  # never; keep every checkpoint
    for name, value, message in (("seed", None, "train.seed = None is not a whole number >= 0"),
                                 ("num_steps", 2.5, "train.num_steps = 2.5 is not a whole number >= 0"),
                                 ("keep_checkpoints", 0, "train.keep_checkpoints = 0 is not a whole number >= 1 or None"),
                                 ("sample_every", True, "train.sample_every = True is not"),
                                 ("mixed_precision", "fp8", "train.mixed_precision = 'fp8' is not a precision")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            trainer.TrainConfig(input_spec=None, **{name: value})


def test_actions_run_in_order_when_their_interval_is_crossed():
    log = []
    fake_loop(10, 3, [Recorder(4, log, "a"), Recorder(1, log, "b")], start=1)
    # Steps 4, 7, 10: "a" at 4 (4 % 4 = 0) and 10 (10 % 4 = 2 < 3: crossed 8), "b" after every call.
    assert log == [("a", "begin", 1), ("b", "begin", 1), ("a", 4, 4.0), ("b", 4, 4.0), ("b", 7, 7.0),
                   ("a", 10, 10.0), ("b", 10, 10.0), ("a", "end", 10), ("b", "end", 10)]


def test_an_error_in_a_step_skips_the_end_of_every_action():
    log = []
    with pytest.raises(RuntimeError, match="boom"):
        fake_loop(10, 1, [Recorder(1, log, "a")], fail_at=3)
    assert ("a", "end", 3) not in log and ("a", 2, 2.0) in log


def test_step_result_flags_and_reduced_values_once():
    calls = []
    result = actions.StepResult(6, 4, 2, 6, {"d_loss": 1.0, "d_real": 2.0, "d_fake": -1.0},
                                lambda v: calls.append(v) or v)
    assert result.first and result.final and result.crossed(3) and not result.crossed(4) and not result.crossed(0)
    assert result.values()["d_gap"] == 3.0 and result.values() is result.values() and len(calls) == 3


def test_train_runs_added_actions_and_rebuilds_from_the_stored_keras_config(tmp_path):
    config.parse(["synthetic.gin"], ["Generator.base_channels = 4", "Discriminator.base_channels = 4",
                                     "build_input.global_batch_size = 4", "train.num_steps = 4",
                                     "train.checkpoint_every = 2", "train.sample_every = 100", "SAGAN.ema_decay = 0.5",
                                     "Generator.attention_resolutions = (8,)",
                                     "train.mixed_precision = None"])  # float32: outputs compared to 1e-6 below
    log = []
    model = trainer.train(str(tmp_path), tf.distribute.get_strategy(), actions=[Recorder(2, log, "every2")])
    assert [entry[1] for entry in log] == ["begin", 2, 4, "end"]
    assert os.path.exists(tmp_path / "model_config.json")
    # The stored Keras config is what a run is read back from: not the gin config, here removed and with
    # the process's gin bindings changed.
    os.remove(tmp_path / "operative_config.gin")
    config.parse([], ["Generator.attention_resolutions = (16,)", "SAGAN.ema_decay = None"])
    run = restore.load_run(str(tmp_path))
    assert run.model.generator.attention_resolutions == (8,) and run.model.ema_decay == 0.5
    assert run.model.generator.get_config() == model.generator.get_config() and run.step == 4
    z = tf.random.normal((3, 128), seed=1)
    labels = tf.constant([0, 1, 2])
    tf.debugging.assert_near(run.model.sampling_generator(z, labels, training=False),
                             model.sampling_generator(z, labels, training=False), atol=1e-6)


def test_precision_auto_follows_native_bf16_and_onednn_flag_sets_the_variable(monkeypatch):
    monkeypatch.setattr(trainer, "native_bf16", lambda: True)
    monkeypatch.setattr(trainer, "onednn_enabled", lambda: True)
    assert trainer.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(trainer, "onednn_enabled", lambda: False)  # TensorFlow's own kernels: no native bf16
    assert trainer.resolve_precision("auto") is None
    monkeypatch.setattr(trainer, "onednn_enabled", lambda: True)
    monkeypatch.setattr(trainer, "native_bf16", lambda: False)
    assert trainer.resolve_precision("auto") is None  # float32 on a CPU without bf16 (this test has no GPU)
    assert trainer.resolve_precision("mixed_float16") == "mixed_float16"
    assert "native bfloat16 no" in trainer.hardware_line()
    # With GPUs, "auto" is bfloat16 only when every one computes it natively (compute capability >= 8.0).
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu"] if kind == "GPU" else [])
    monkeypatch.setattr(trainer, "native_bf16", lambda: True)
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda gpu: {"compute_capability": (7, 0)})
    assert trainer.resolve_precision("auto") is None
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda gpu: {"compute_capability": (8, 6)})
    assert trainer.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.undo()
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert machine.set_onednn("auto") == "--onednn=auto" and os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert machine.set_onednn("auto") == "from the environment" and os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert machine.set_onednn("on") == "--onednn=on" and os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    state = "on" if trainer.onednn_enabled() else "off"  # what this process started with, not the variable
    assert f"TensorFlow oneDNN {state} (x)" in trainer.hardware_line("x")


def test_configured_precision_is_the_configs_binding_or_the_default_resolved(monkeypatch):
    monkeypatch.setattr(trainer, "native_bf16", lambda: True)
    monkeypatch.setattr(trainer, "onednn_enabled", lambda: True)
    with config.isolated():
        config.parse(["synthetic.gin"])
        assert trainer.configured_precision() == "mixed_bfloat16"  # unbound: TrainConfig's default, auto
        config.parse(["synthetic.gin"], [machine.precision_binding("auto")])
        assert trainer.configured_precision() == "mixed_bfloat16"
        config.parse(["synthetic.gin"], [machine.precision_binding("float32")])
        assert trainer.configured_precision() is None
        monkeypatch.setattr(trainer, "native_bf16", lambda: False)
        config.parse(["synthetic.gin"], [machine.precision_binding("auto")])
        assert trainer.configured_precision() is None
        config.parse(["synthetic.gin"])
        assert trainer.configured_precision() is None  # the default without native bfloat16: float32


def test_an_isa_limit_without_bf16_makes_bf16_not_native(monkeypatch):
    monkeypatch.setattr(machine, "cpu_features", lambda: {"avx512_bf16": True, "amx_bf16": False})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert machine.native_bf16()
    for limit, native in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("ALL", True),
                          ("AVX512_CORE_AMX", True)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
        assert machine.native_bf16() is native, limit
    monkeypatch.setattr(machine, "cpu_features", lambda: {"avx512_bf16": False, "amx_bf16": False})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert not machine.native_bf16()
