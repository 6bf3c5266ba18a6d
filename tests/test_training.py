"""Tests of the SAGAN train step, the losses, and the `python -m sagan_tf.train` entry point."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from shared_runs import logged

from sagan_tf import losses
from sagan_tf.models import Discriminator, Generator
from sagan_tf.models.sagan import SAGAN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _traced_step(model):
    """The model's train step as the trainer traces it (no autograph: its control flow is static)."""
    return tf.function(model.train_step, autograph=False)


def test_hinge_losses_by_hand():
    real, fake = np.array([2.0, 0.5, -1.0]), np.array([-2.0, 0.0, 0.5])
    np.testing.assert_allclose(losses.hinge_discriminator_loss(real, fake), [0.0, 1.5, 3.5])
    np.testing.assert_allclose(losses.hinge_generator_loss(fake), [2.0, 0.0, -0.5])
    np.testing.assert_allclose(losses.non_saturating_generator_loss(np.array([0.0])), [np.log(2.0)], rtol=1e-6)
    with pytest.raises(ValueError, match="loss='l2'"):
        losses.get_losses("l2")


def _model(num_classes=3):
    gen = Generator(resolution=16, num_classes=num_classes, base_channels=4, channel_multipliers=(4, 2, 1),
                    attention_resolutions=(8,))
    disc = Discriminator(resolution=16, num_classes=num_classes, base_channels=4, channel_multipliers=(1, 2, 2),
                         attention_resolutions=(8,))
    return SAGAN(gen, disc, seed=7)


def test_separate_discriminator_calls_match_the_joint_call():
    """One D call on [real; fake] (the default) and two calls see the same logits up to the u update."""
    images, labels = tf.random.uniform((4, 16, 16, 3), -1, 1, seed=3), tf.constant([0, 1, 2, 0])
    init = _model()
    init.build_all()
    for _ in range(50):  # converge D's power iterations, so one more changes sigma only slightly
        init.discriminator(images, labels, training=True)
    results = {}
    for joint in (True, False):
        base = _model()
        model = SAGAN(base.generator, base.discriminator, seed=7, joint_discriminator=joint)
        model.build_all()
        model.generator.set_weights(init.generator.get_weights())
        model.discriminator.set_weights(init.discriminator.get_weights())
        model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
        results[joint] = {k: float(v) for k, v in _traced_step(model)((images, labels)).items()}
        assert model.get_config()["joint_discriminator"] is joint
    # Real logits come first in both paths, after the same single power iteration: equal.
    np.testing.assert_allclose(results[False]["d_real"], results[True]["d_real"], rtol=1e-5, atol=1e-6)
    # The separate fake call runs after a second (converged) power iteration: close.
    np.testing.assert_allclose(results[False]["d_fake"], results[True]["d_fake"], rtol=1e-3)


def test_each_generator_pass_waits_for_the_previous_update_gradients():
    """Peak memory: a generator pass that reads no D weight could start while the previous step's backward
    pass still holds its activations. In the traced step (two D steps, then the G step), the generator's
    input layer of each pass after the first waits for every filter gradient of the step before it."""
    if os.path.join(REPO, "tools") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "tools"))  # the lab, as `python tools/x.py` sees it
    from lab.flops import ancestors

    base = _model()
    model = SAGAN(base.generator, base.discriminator, seed=7, disc_steps=2)
    model.build_all()
    model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
    graph = _traced_step(model).get_concrete_function((tf.zeros((4, 16, 16, 3)), tf.constant([0, 1, 2, 0]))).graph
    ops = graph.get_operations()
    draws = [i for i, op in enumerate(ops) if op.type == "StatelessRandomNormalV2"]  # z of D, D, G steps
    assert len(draws) == 3
    for previous, draw in zip(draws, draws[1:]):
        gradients = [op for op in ops[previous:draw] if op.type == "Conv2DBackpropFilter"]
        input_layer = next(op for op in ops[draw:] if op.type == "MatMul" and ops[draw] in ancestors([op]))
        assert gradients and set(gradients) <= ancestors([input_layer])


def test_blocked_attention_trains_like_the_full_path():
    """A traced train step with query-blocked attention in G and D gives the full path's losses and updates."""
    images, labels = tf.random.uniform((4, 16, 16, 3), -1, 1, seed=5), tf.constant([0, 1, 2, 0])
    init = _model()
    init.build_all()
    models = {}
    for block in (None, 16):
        gen = Generator(resolution=16, num_classes=3, base_channels=4, channel_multipliers=(4, 2, 1),
                        attention_resolutions=(8,), attention_block_size=block)
        disc = Discriminator(resolution=16, num_classes=3, base_channels=4, channel_multipliers=(1, 2, 2),
                             attention_resolutions=(8,), attention_block_size=block)
        model = SAGAN(gen, disc, seed=7)
        model.build_all()
        model.generator.set_weights(init.generator.get_weights())
        model.discriminator.set_weights(init.discriminator.get_weights())
        for layer in (model.generator.attention_layers + model.discriminator.attention_layers):
            layer.gamma.assign(0.5)  # a live attention branch
        model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
        models[block] = (model, {k: float(v) for k, v in _traced_step(model)((images, labels)).items()})
    (full, full_values), (blocked, blocked_values) = models[None], models[16]
    for name in ("d_loss", "g_loss", "g_grad_norm"):
        np.testing.assert_allclose(blocked_values[name], full_values[name], rtol=1e-4, err_msg=name)
    for a, b in zip(full.generator.weights + full.discriminator.weights,
                    blocked.generator.weights + blocked.discriminator.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)


def test_ema_follows_the_generator():
    base = _model()
    model = SAGAN(base.generator, base.discriminator, ema_decay=0.5)
    model.build_all()
    model.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2))
    images, labels = tf.random.uniform((4, 16, 16, 3), -1, 1), tf.constant([0, 1, 2, 0])
    step = _traced_step(model)
    for _ in range(3):
        step((images, labels))
    ema = model.sampling_generator
    assert ema is not model.generator
    kernel = model.generator.output_conv.kernel.numpy()
    ema_kernel = ema.output_conv.kernel.numpy()
    assert not np.allclose(kernel, ema_kernel)  # averaged, so lagging behind


def _train_cmd(model_dir, *params):
    cmd = [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={model_dir}",
           "--gin_param=Generator.base_channels = 4", "--gin_param=Discriminator.base_channels = 4",
           "--gin_param=build_input.global_batch_size = 4", "--gin_param=train.log_every = 2",
           "--gin_param=train.checkpoint_every = 3", "--gin_param=train.sample_every = 3"]
    return cmd + [f"--gin_param={p}" for p in params]


def _train(model_dir, *params, timeout=300, env=None):
    return subprocess.run(_train_cmd(model_dir, *params), capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


def test_bad_configuration_stops_before_touching_model_dir(tmp_path):
    # A misspelt Keras argument (which passes gin: Keras constructors take **kwargs) is a row of
    # tests/test_commands.py's TABLE; here a data source that cannot be read.
    result = _train(tmp_path / "b", "build_input.source = @folder_source()", f"folder_source.path = '{tmp_path}/nope'")
    assert result.returncode == 2 and "nope' does not exist" in result.stderr and "Traceback" not in result.stderr
    assert "In call to configurable" not in result.stderr
    assert not (tmp_path / "b").exists()
    (tmp_path / "file").write_text("")
    result = _train(tmp_path / "file", "train.num_steps = 1")
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr and "Traceback" not in result.stderr


def test_mixed_precision_xla_and_steps_per_execution(tmp_path):
    """bf16 under XLA, two steps per call: XLA compiles the train step (its HLO is dumped) and that step computes
    its convolutions in bfloat16; the losses are finite and move; the float32 weights change between checkpoints."""
    run, dump = tmp_path / "run", tmp_path / "xla"
    # At 16x16 (one block fewer in G and in D): XLA compiles the step in about half the time of 32x32.
    small = ["RESOLUTION = 16", "Generator.channel_multipliers = (4, 2, 1)", "Generator.attention_resolutions = (8,)",
             "Discriminator.channel_multipliers = (1, 2, 2)", "Discriminator.attention_resolutions = (8,)"]
    result = _train(run, *small, "train.num_steps = 4", "train.mixed_precision = 'mixed_bfloat16'",
                    "train.jit_compile = True", "train.steps_per_execution = 2", "train.checkpoint_every = 2", timeout=900,
                    env={"XLA_FLAGS": f"--xla_dump_to={dump} --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*one_step.*"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "precision mixed_bfloat16." in result.stdout
    (hlo,) = dump.glob("*one_step*before_optimizations.txt")  # the jit_compile'd step, compiled once
    convolutions = [line for line in hlo.read_text().splitlines() if " convolution(" in line]
    assert convolutions and all("= bf16[" in line for line in convolutions), convolutions[:3]
    for tag in ("d_loss", "g_loss"):
        values = logged(run, tag)
        assert sorted(values) == [2, 4] and np.all(np.isfinite(list(values.values()))), (tag, values)
        assert values[2] != values[4], (tag, values)
    first, last = (tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{step}")) for step in (2, 4))
    kernels = [name for name, _ in tf.train.list_variables(str(run / "checkpoints" / "ckpt-4"))
               if "kernel" in name and "OPTIMIZER_SLOT" not in name]
    assert len(kernels) > 10
    for name in kernels:
        assert first.get_variable_to_dtype_map()[name] == tf.float32, name  # bf16 compute, float32 weights
        assert np.all(np.isfinite(last.get_tensor(name))), name
    assert sum(not np.array_equal(first.get_tensor(name), last.get_tensor(name)) for name in kernels) > len(kernels) // 2


def test_checkpoint_restores_every_weight_and_reproduces_the_last_samples(tiny_run):
    """BN statistics, spectral-norm vectors, attention layers and EMA weights all come back from a checkpoint:
    the restored (EMA) generator redraws the run's final sample grid pixel for pixel."""
    from sagan_tf import restore
    from sagan_tf.images import labelled_grid
    from sagan_tf.trainer import sample_grid_inputs

    run = restore.load_run(str(tiny_run))
    generator = run.model.sampling_generator
    assert run.model.ema_generator is not None and run.step == 4
    z, labels, names = sample_grid_inputs(10, 64, generator.dim_z, seed=0)  # train(num_samples=64, seed=0)
    assert names == [f"class {c}" for c in range(10)] and labels.tolist() == np.repeat(np.arange(10), 6).tolist()
    expected = tf.io.decode_png(tf.io.read_file(str(tiny_run / "samples" / "step_0000004.png"))).numpy()
    got = labelled_grid(generator(z, labels, training=False), names)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    # A row per class, 32x32 samples enlarged 3x to 96 pixels, the class name in a margin on the left.
    margin = expected.shape[1] - 6 * 96
    assert expected.shape[0] == 10 * 96 and 30 < margin < 120
    assert (expected[:, :margin] < 128).any() and (expected[:, :margin] == 255).mean() > 0.8
    moving = [v for v in generator.variables if "moving_variance" in v.path]
    assert moving and any(not np.allclose(v.numpy(), 1.0) for v in moving)  # trained statistics, not the init


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from sagan_tf import config, gin_registry, trainer  # noqa: F401

    original = SAGAN.train_step

    def poisoned(self, data):  # losses turn NaN from the third generator step on
        outputs = original(self, data)
        poison = tf.where(self.g_optimizer.iterations >= 3, float("nan"), 0.0)
        return {k: v + poison for k, v in outputs.items()}

    monkeypatch.setattr(SAGAN, "train_step", poisoned)
    config.parse(["synthetic.gin"], ["Generator.base_channels = 4", "Discriminator.base_channels = 4",
                                     "build_input.global_batch_size = 4", "train.num_steps = 10",
                                     "train.checkpoint_every = 2", "train.sample_every = 100"])
    with pytest.raises(trainer.DivergedError, match=r"step 3: d_loss, g_loss not finite.*ckpt-2"):
        trainer.train(str(tmp_path), tf.distribute.get_strategy())
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert not any(name.startswith("ckpt-3") for name in os.listdir(tmp_path / "checkpoints"))


def test_collapse_warning_fires_once(capsys):
    from sagan_tf.actions import CollapseWarning

    collapse = CollapseWarning(patience=3)
    for step, loss in enumerate([0.5, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0]):
        collapse.update(loss, step)
    out = capsys.readouterr().out
    assert out.count("training may have collapsed") == 1 and "(step 6)" in out
    collapse = CollapseWarning(patience=2)
    for step, norm in enumerate([1.0, 1e-8, 1e-8, 1e-8]):
        collapse.update(1.0, step, norm)
    out = capsys.readouterr().out
    assert out.count("G has stopped learning") == 1 and "collapsed" not in out


def test_one_uint8_conversion_rounds_everywhere():
    """Grids, attention figures, serving and the evaluator agree: p / 127.5 - 1 maps back to p, and values
    between levels round to the nearest (truncation turned 127.9 into 127)."""
    from sagan_tf import images as images_lib
    from sagan_tf.attention_maps import attention_figure
    from sagan_tf.eval.evaluator import generator_batches

    levels = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(images_lib.to_uint8(levels / 127.5 - 1.0).numpy(), levels.astype(np.uint8))
    between = np.array([127.9, 0.4, 254.6], np.float32) / 127.5 - 1.0
    np.testing.assert_array_equal(images_lib.to_uint8(between).numpy(), [128, 0, 255])
    image = np.full((1, 4, 4, 1), 127.9 / 127.5 - 1.0, np.float32)
    assert images_lib.image_grid(image, rows=1)[0, 0].tolist() == [128, 128, 128]
    figure = attention_figure(np.repeat(image, 3, -1), {}, [])
    assert figure[0, 0].tolist() == [128, 128, 128]

    class Constant:
        dim_z = 2

        def __call__(self, z, labels, training=False):
            return tf.fill((tf.shape(z)[0], 4, 4, 3), 127.9 / 127.5 - 1.0)

    batch, _ = next(generator_batches(Constant(), 0, 2, 2))
    np.testing.assert_allclose(batch, 128 / 127.5 - 1.0, atol=1e-6)


def test_progress_is_plain_lines_off_a_terminal_and_rates_count_this_process_only(monkeypatch):
    import io

    from sagan_tf import progress as progress_lib

    clock = iter([1000.0, 1010.0, 1020.0])
    monkeypatch.setattr(progress_lib.time, "time", lambda: next(clock))
    stream = io.StringIO()
    progress = progress_lib.Progress(400, first_step=300, stream=stream)  # a resumed run, not a terminal
    assert progress.plain
    progress.update(310, {"d_loss": 1.5, "g_loss": 0.25, "img/s": 32.0})
    line = stream.getvalue().strip()
    # 10 steps of this process in 10 s: 1 s/step and 90 steps left (not 10 s / 310 steps).
    assert line.startswith("step 310/400  d_loss 1.5000  g_loss 0.2500  32.0 images/s  1.000 s/step  ETA 1m30s"), line
    assert "\r" not in line and "\x1b" not in line and "\b" not in line


def test_progress_on_a_terminal_rewrites_one_line_with_a_bar(monkeypatch):
    import io

    from sagan_tf import progress as progress_lib

    clock = iter([1000.0, 1010.0, 1020.0])
    monkeypatch.setattr(progress_lib.time, "time", lambda: next(clock))
    stream = io.StringIO()
    progress = progress_lib.Progress(400, first_step=300, stream=stream, plain=False)
    progress.update(310, {"d_loss": 1.5, "img/s": 32.0})
    progress.update(320, {"d_loss": 1.25, "img/s": 32.0})
    progress.message("done")
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\ndone\n"), repr(text)
    # the bar is 320/400 full; the rate counts this process's 20 steps in 20 s
    assert "\r[===================.....] step 320/400  d_loss 1.2500  32.0 images/s  1.000 s/step  ETA 1m20s" in text


def test_fit_trains_with_keras_callbacks():
    """`SAGAN.fit` runs the same train_step as the trainer and drives ordinary Keras callbacks."""
    model = _model()
    model.build_all()
    model.compile(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9), keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9))
    images = np.random.RandomState(0).uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(16) % 3)).batch(4, drop_remainder=True).repeat()
    seen = []
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs["d_loss"]))
    history = model.fit(dataset, epochs=2, steps_per_epoch=3, verbose=0, callbacks=[callback])
    assert int(model.g_optimizer.iterations) == 6 and int(model.d_optimizer.iterations) == 6
    assert len(seen) == 6 and all(np.isfinite(seen))
    assert set(history.history) >= {"d_loss", "g_loss", "d_real", "d_fake"} and len(history.history["g_loss"]) == 2
