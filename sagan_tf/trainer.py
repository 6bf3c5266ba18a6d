"""The training loop behind `python -m sagan_tf.train`: checkpoints, resume, summaries, samples."""

import os
import signal
import sys
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from sagan_tf import restore
from sagan_tf.progress import Progress, format_duration
from sagan_tf.images import labelled_grid
from sagan_tf.layers import SelfAttention, SpectralNormalization
from sagan_tf.models import Discriminator, Generator
from sagan_tf.models.sagan import SAGAN


def scalar(variable):
    """A Python float of a (possibly distributed) scalar Keras variable or tensor."""
    return float(tf.convert_to_tensor(getattr(variable, "value", variable)))


def _layers_of_type(model, cls):
    return [layer for layer in model._flatten_layers() if isinstance(layer, cls)]


def diagnostics(model):
    """Scalars for TensorBoard: gamma of every attention layer, sigma of every SN layer."""
    scalars = {}
    for net in (model.generator, model.discriminator):
        for layer in _layers_of_type(net, SelfAttention):
            scalars[f"gamma/{net.name}/{layer.name}"] = scalar(layer.gamma)
        sigmas = [scalar(layer.sigma) for layer in _layers_of_type(net, SpectralNormalization)]
        if sigmas:
            scalars[f"spectral_norm/{net.name}/max_sigma"] = max(sigmas)
            scalars[f"spectral_norm/{net.name}/mean_sigma"] = float(np.mean(sigmas))
    return scalars


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


class DivergedError(RuntimeError):
    """Training produced NaN or Inf; the run stopped without saving."""


def check_finite(values, step, checkpoint):
    """Raises DivergedError naming the non-finite values of `values` (a dict of floats)."""
    bad = sorted(name for name, value in values.items() if not np.isfinite(value))
    if bad:
        where = f"the latest checkpoint, {checkpoint}, is the last good one" if checkpoint else "no checkpoint was saved"
        raise DivergedError(f"Training diverged at step {step}: {', '.join(bad)} not finite. Stopped without "
                            f"saving; {where}. Lower the learning rates or use float32.")


class _Collapse:
    """Warns once each when, for `patience` logs in a row, D's loss stays at ~0 (it separates everything)
    or G's gradient norm at ~0 (G no longer learns)."""

    def __init__(self, patience=10, threshold=1e-3, grad_threshold=1e-6):
        self.patience, self.threshold, self.grad_threshold = patience, threshold, grad_threshold
        self.count, self.grad_count, self.warned, self.grad_warned = 0, 0, False, False

    def update(self, d_loss, step, g_grad_norm=None):
        self.count = self.count + 1 if d_loss < self.threshold else 0
        if self.count >= self.patience and not self.warned:
            self.warned = True
            print(f"\nWarning: D loss below {self.threshold} for {self.count} logs (step {step}): D separates real "
                  "from fake perfectly and G's gradients may vanish; training may have collapsed.")
        if g_grad_norm is not None:
            self.grad_count = self.grad_count + 1 if g_grad_norm < self.grad_threshold else 0
            if self.grad_count >= self.patience and not self.grad_warned:
                self.grad_warned = True
                print(f"\nWarning: G's gradient norm below {self.grad_threshold} for {self.grad_count} logs "
                      f"(step {step}): G has stopped learning.")


class _Preemption:
    """Turns SIGTERM into a flag that the loop checks after each step."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


@gin.configurable(denylist=["model_dir", "strategy"])
def train(
    model_dir,
    strategy,
    input_spec=gin.REQUIRED,
    num_steps=1000,
    steps_per_execution=1,
    log_every=50,
    checkpoint_every=500,
    sample_every=500,
    keep_checkpoints=3,
    generator_optimizer=keras.optimizers.Adam,
    discriminator_optimizer=keras.optimizers.Adam,
    jit_compile=False,
    mixed_precision=None,
    checkpoint_input=True,
    num_samples=64,
    seed=0,
    eval_every=0,
    deterministic=False,
):
    """Trains a SAGAN, resuming from the latest checkpoint in `model_dir` if there is one.

    Args:
        model_dir: checkpoints, TensorBoard events, sample grids and the operative gin config.
        strategy: a `tf.distribute.Strategy`.
        input_spec: the `InputSpec` of `build_input`.
        num_steps: total generator steps (a resumed run stops at the same total).
        steps_per_execution: train steps inside one tf.function call (TPU-style loops).
        log_every, checkpoint_every, sample_every: intervals in steps.
        keep_checkpoints: checkpoints kept by the CheckpointManager.
        generator_optimizer, discriminator_optimizer: optimizer classes or factories, called inside
            the strategy scope (gin: `@generator/keras.optimizers.Adam`, scoped learning rates).
        jit_compile: XLA-compile the train step.
        mixed_precision: None, "mixed_bfloat16" or "mixed_float16" (with dynamic loss scaling).
            Softmax, spectral-norm power iteration and the networks' outputs stay float32.
        checkpoint_input: save the input iterator's position in checkpoints, so a resumed run reads
            the data a continuous run would have (costs the shuffle buffer's size on disk).
        num_samples: images in the sample grid (fixed z and labels).
        seed: the run seed (`--seed`): initial weights (`keras.utils.set_random_seed`), the z stream
            (unless `SAGAN.seed` is bound), data order and flips (unless `build_input.seed` is
            bound), and the fixed sample z.
        deterministic: TensorFlow op determinism (`tf.config.experimental.enable_op_determinism`)
            and a deterministic input pipeline: two runs of one config and seed on one machine give
            bit-identical losses. Slower; it stays on for the rest of the process.
        eval_every: evaluate FID/KID/IS every this many steps (0: never) with the gin-configured
            `Evaluator` against `evaluation_input()`, and once at step 0 on a fresh start (the
            untrained generator); scalars go to `model_dir/eval`, the best-FID checkpoint (step 0
            excluded) to `model_dir/best` (see `sagan_tf.eval.periodic`).

    Returns:
        The trained `SAGAN` model.
    """
    replicas = strategy.num_replicas_in_sync
    if input_spec.global_batch_size % replicas:
        raise ValueError(
            f"The global batch {input_spec.global_batch_size} does not divide over {replicas} replicas."
        )
    if mixed_precision not in (None, "mixed_bfloat16", "mixed_float16"):
        raise ValueError(
            "`mixed_precision` must be None, 'mixed_bfloat16' or 'mixed_float16'. "
            f"Received: `mixed_precision={mixed_precision!r}`"
        )
    if steps_per_execution < 1:
        raise ValueError(f"`steps_per_execution` must be >= 1. Received: {steps_per_execution}")
    tf.io.gfile.makedirs(model_dir)  # only now: gin has built the input, so data errors came first
    keras.utils.set_random_seed(seed)  # before any layer exists: every initializer draws from it
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(mixed_precision or "float32")
    try:
        return _train(model_dir, strategy, input_spec, num_steps, steps_per_execution, log_every,
                      checkpoint_every, sample_every, keep_checkpoints, generator_optimizer,
                      discriminator_optimizer, jit_compile, mixed_precision, checkpoint_input, num_samples,
                      seed, eval_every, deterministic)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def sample_grid_inputs(num_classes, num_samples, dim_z, seed):
    """(z [N, dim_z], labels [N] or None, row names) of the fixed sample grid: one row per class (8 classes
    spread over the label range when there are more than 16), about `num_samples` images in all;
    unconditional: a square grid."""
    if num_classes:
        shown = np.arange(num_classes) if num_classes <= 16 else np.linspace(0, num_classes - 1, 8).round()
        columns = max(num_samples // len(shown), 1)
        labels = np.repeat(shown.astype(np.int32), columns)
        names = [f"class {int(c)}" for c in shown]
    else:
        rows = max(int(np.sqrt(num_samples)), 1)
        labels, names = None, [""] * rows
    count = len(labels) if labels is not None else len(names) * max(num_samples // len(names), 1)
    z = np.random.RandomState(seed).randn(count, dim_z).astype(np.float32)
    return z, labels, names


def _optimizer(factory, mixed_precision):
    optimizer = factory()
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_model(input_spec):
    """The gin-configured, built `SAGAN` for `input_spec` (or `restore.DataFacts`); call in a strategy scope."""
    model = SAGAN(
        Generator(num_classes=input_spec.num_classes, resolution=input_spec.resolution,
                  out_channels=input_spec.channels),
        Discriminator(num_classes=input_spec.num_classes, resolution=input_spec.resolution),
    )
    model.build_all(input_spec.channels)
    return model


class VariableBag(tf.Module):
    """The tf.Variables behind a list of Keras variables, keyed so that a `tf.train.Checkpoint` saves all.

    A `tf.train.Checkpoint` of a Keras 3 model reaches only some of its variables (not those of layers
    kept in lists, nor Keras variables in plain lists): the rest would be saved only through the
    optimiser's slot references, and non-trainable ones (BatchNorm statistics, spectral-norm u and
    sigma, EMA weights) not at all. Keys are the variables' Keras paths without the model's own name
    (so that `generator_3` restores what `generator` saved), or their positions.
    """

    def __init__(self, variables, by_position=False):
        super().__init__()
        if by_position:
            keys = [str(i) for i in range(len(variables))]
        else:
            keys = [v.path.split("/", 1)[-1] for v in variables]
            if len(set(keys)) != len(keys):
                raise ValueError("Variable paths are not unique: " + ", ".join(sorted(k for k in keys if keys.count(k) > 1)))
        self.variables_by_key = {key: getattr(v, "value", v) for key, v in zip(keys, variables)}


def model_trackables(model):
    """{checkpoint name: VariableBag} of every network and EMA variable of a built `SAGAN`."""
    return {
        "generator": VariableBag(model.generator.variables),
        "discriminator": VariableBag(model.discriminator.variables),
        "ema": VariableBag(list(getattr(model, "_ema_weights", [])), by_position=True),
    }


def weights_checkpoint(model):
    """A `tf.train.Checkpoint` of the networks and the EMA weights: what sampling and evaluation need.

    It reads the training checkpoints (`restore(...).expect_partial()` skips the optimisers).
    """
    return tf.train.Checkpoint(**model_trackables(model))


def _train(model_dir, strategy, input_spec, num_steps, steps_per_execution, log_every, checkpoint_every,
           sample_every, keep_checkpoints, generator_optimizer, discriminator_optimizer, jit_compile,
           mixed_precision, checkpoint_input, num_samples, seed, eval_every, deterministic):
    with strategy.scope():
        model = build_model(input_spec)
        model.compile(
            _optimizer(generator_optimizer, mixed_precision), _optimizer(discriminator_optimizer, mixed_precision)
        )
        dataset = input_spec.distribute(strategy, seed, deterministic)
        iterator = iter(dataset)
        checkpoint = tf.train.Checkpoint(
            **model_trackables(model),
            generator_optimizer=model.g_optimizer,
            discriminator_optimizer=model.d_optimizer,
            seed_state=model.seed_generator.state.value,
        )
        if checkpoint_input:
            checkpoint.iterator = iterator
    chief = is_chief(strategy)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if not chief:  # every worker saves (the save is collective); only the chief's files are kept
        task_id = strategy.cluster_resolver.task_id
        checkpoint_dir = os.path.join(model_dir, "workers", f"worker_{task_id}")
        keep_checkpoints = 1
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, keep_checkpoints)
    evaluation = None
    if eval_every:
        from sagan_tf.eval.periodic import PeriodicEvaluation  # noqa: PLC0415  (loads tensorflow-gan)

        evaluation = PeriodicEvaluation(model_dir, weights_checkpoint(model), chief, checkpoint_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        print(f"Resumed from {latest} at step {int(scalar(model.g_optimizer.iterations))}.")
    if chief:
        with tf.io.gfile.GFile(os.path.join(model_dir, "operative_config.gin"), "w") as f:
            f.write(gin.operative_config_str())
        restore.write_facts(model_dir, input_spec)

    @tf.function(jit_compile=jit_compile)
    def one_step(data):
        return model.train_step(data)

    @tf.function
    def train_steps(iterator):
        # With several local replicas `strategy.run` returns PerReplica values, which a tf.range loop
        # cannot carry: the loop runs all steps but the last, whose outputs are returned.
        for _ in tf.range(steps_per_execution - 1):
            strategy.run(one_step, args=(next(iterator),))
        return strategy.run(one_step, args=(next(iterator),))

    fixed_z, fixed_labels, row_names = sample_grid_inputs(model.num_classes, num_samples, model.generator.dim_z, seed)
    writer = (tf.summary.create_file_writer(os.path.join(model_dir, "train")) if chief
              else tf.summary.create_noop_writer())
    samples_dir = os.path.join(model_dir, "samples")
    os.makedirs(samples_dir, exist_ok=True)
    preemption = _Preemption()
    collapse = _Collapse()

    def step():
        return int(scalar(model.g_optimizer.iterations))

    start = step()
    progress = Progress(num_steps, start)
    replicas = strategy.num_replicas_in_sync
    print(f"Training {model_dir}: {'resuming at step %d' % start if start else 'new run'}, to step {num_steps}; "
          f"{type(strategy).__name__.lstrip('_')} with {replicas} replica{'s' if replicas > 1 else ''}, global batch "
          f"{input_spec.global_batch_size}; data {input_spec.source_name}; seed {seed}.", flush=True)

    def write_samples():
        if not chief:
            return
        generator = model.sampling_generator
        images = generator(fixed_z, fixed_labels, training=False)
        grid = labelled_grid(images, row_names)
        tf.io.write_file(os.path.join(samples_dir, f"step_{step():07d}.png"), tf.io.encode_png(grid))
        with writer.as_default(step=step()):
            tf.summary.image("samples", grid[None], max_outputs=1)

    completed = False
    try:
        tick, images_seen = time.time(), 0
        if evaluation is not None and start == 0:  # the untrained generator: the curve's first point
            evaluation(model, 0, track_best=False)
        while step() < num_steps and not preemption.requested:
            outputs = train_steps(iterator)
            images_seen += steps_per_execution * input_spec.global_batch_size
            current = step()
            # Every step, before anything is saved: running means of the losses turn NaN and stay NaN.
            losses = {k: float(strategy.reduce("MEAN", outputs[k], axis=None)) for k in ("d_loss", "g_loss")}
            check_finite(losses, current, manager.latest_checkpoint)
            if current % log_every < steps_per_execution or current >= num_steps:
                values = {k: float(strategy.reduce("MEAN", v, axis=None)) for k, v in outputs.items()}
                values["d_gap"] = values["d_real"] - values["d_fake"]
                collapse.update(values["d_loss"], current, values.get("g_grad_norm"))
                rate = images_seen / max(time.time() - tick, 1e-9)
                values["img/s"] = rate
                with writer.as_default(step=current):
                    for name, value in {**values, **diagnostics(model)}.items():
                        tf.summary.scalar(name.replace("img/s", "images_per_second"), value)
                    tf.summary.scalar("learning_rate/generator", scalar(model.g_optimizer.learning_rate))
                    tf.summary.scalar("learning_rate/discriminator", scalar(model.d_optimizer.learning_rate))
                progress.update(current, values)
                for tracker in model.trackers.values():
                    tracker.reset_state()
                tick, images_seen = time.time(), 0
            if current % checkpoint_every < steps_per_execution:
                manager.save(checkpoint_number=current)
            if current % sample_every < steps_per_execution or current == start + steps_per_execution:
                write_samples()
            if evaluation is not None and current % eval_every < steps_per_execution:
                evaluation(model, current)
        completed = True
    finally:
        preemption.restore()
        writer.flush()
    # At the end and on SIGTERM; not after an error, so the last good checkpoint stays the latest.
    if completed and step() > 0:
        manager.save(checkpoint_number=step())
    if preemption.requested:
        print(f"SIGTERM: saved a checkpoint at step {step()} and stopped.")
    else:
        write_samples()
    if chief and completed:
        seconds = time.time() - progress.start
        done = step() - start
        grids = sorted(os.listdir(samples_dir))
        python = os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("..") else sys.executable
        progress.message(
            f"Done: steps {start}-{step()} in {format_duration(seconds)} "
            f"({done * input_spec.global_batch_size / max(seconds, 1e-9):.1f} images/s). "
            f"Last checkpoint: {manager.latest_checkpoint}. Last samples: "
            f"{os.path.join(samples_dir, grids[-1]) if grids else 'none'}.\n"
            f"  Evaluate: {python} -m sagan_tf.evaluate --model_dir={model_dir}\n"
            f"  Export:   {python} -m sagan_tf.export --model_dir={model_dir} --export_dir={os.path.join(model_dir, 'export')}")
    return model
