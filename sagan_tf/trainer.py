"""The training loop behind `python -m sagan_tf.train`: a typed config, a loop that runs steps, and the
actions (`sagan_tf.actions`) that log, checkpoint, sample, evaluate and guard between them.

`TrainConfig` is what gin fills (its bindings are named `train.*`); `train(model_dir, strategy, config)`
builds the model and the input inside the strategy, restores the latest checkpoint, writes the run
directory's files (`sagan_tf.restore`) and runs `TrainingLoop` with `default_actions(...)` plus any
actions the caller adds.
"""

import copy
import dataclasses
import numbers
import os
import signal
import sys
import time
from typing import Any, Callable, Optional

import gin
import keras
import numpy as np
import tensorflow as tf

from sagan_tf import actions as actions_lib
from sagan_tf import checkpointing, compat, machine, optimizers, restore
from sagan_tf import config as config_lib
from sagan_tf.machine import describe_machine, native_bf16
from sagan_tf.actions import DivergedError, StepResult, scalar  # noqa: F401  (DivergedError: the CLI's)
from sagan_tf.data import feeding
from sagan_tf.data.pipeline import check_batch_size
from sagan_tf.models.factory import DataFacts, build_model
from sagan_tf.progress import Progress, format_duration

MIXED_PRECISIONS = (None, "auto", "mixed_bfloat16", "mixed_float16")  # train.mixed_precision's values
_MIXED_PRECISION_CHOICES = "None, 'auto', 'mixed_bfloat16' or 'mixed_float16'"


def bf16_gpu(gpu):
    """Whether a GPU computes bfloat16 natively: compute capability 8.0 (Ampere) or later."""
    capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    return bool(capability) and tuple(capability) >= (8, 0)


def resolve_precision(mixed_precision):
    """`train.mixed_precision` with "auto" decided for this machine: mixed_bfloat16 where bfloat16 is
    computed natively (a TPU, GPUs of compute capability 8.0 or later, or a CPU with AVX512_BF16 or AMX
    whose oneDNN kernels are on: TensorFlow's own CPU kernels do not use those instructions), None (float32)
    elsewhere."""
    if mixed_precision != "auto":
        return mixed_precision
    if tf.config.list_physical_devices("TPU"):
        return "mixed_bfloat16"
    gpus = tf.config.list_physical_devices("GPU")
    native = all(bf16_gpu(gpu) for gpu in gpus) if gpus else (native_bf16() and onednn_enabled())  # GPUs compute
    return "mixed_bfloat16" if native else None


def configured_precision():
    """The precision a run of the parsed gin config computes in on this machine: its `train.mixed_precision` (the
    `TrainConfig` default where unbound), "auto" decided by `resolve_precision`."""
    value = gin.query_parameter("train.mixed_precision") if config_lib.is_bound("train.mixed_precision") \
        else TrainConfig.mixed_precision
    _check_precision(value)  # as TrainConfig checks it, as a command's one-line error
    return resolve_precision(value)


def _check_precision(value):
    if value not in MIXED_PRECISIONS:
        raise config_lib.ConfigError(f"train.mixed_precision = {value!r} is not a precision",
                                     f"bind {_MIXED_PRECISION_CHOICES}")


def onednn_enabled():
    """Whether this TensorFlow process uses its oneDNN kernels."""
    return compat.onednn_enabled()


def detect_hardware(strategy=None):
    """The `machine.Hardware` this process runs on, for the hardware policy: a visible GPU or TPU, or a TPU
    `strategy`, is an accelerator; oneDNN is the state TensorFlow started with; the kernel level follows the CPU
    and ONEDNN_MAX_CPU_ISA."""
    accelerator = bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU")
                       or isinstance(strategy, tf.distribute.TPUStrategy))
    return machine.Hardware(accelerator=accelerator, onednn=onednn_enabled(),
                            avx512_kernels=machine.avx512_kernels())


def hardware_line(onednn_source=None):
    """One line for the start of a run: the machine, its bf16 support and the oneDNN state TensorFlow runs with
    (fixed when TensorFlow started, whatever TF_ENABLE_ONEDNN_OPTS says now)."""
    state = "on" if onednn_enabled() else "off"
    return (f"machine {describe_machine()}, native bfloat16 {'yes' if native_bf16() else 'no'}; TensorFlow oneDNN "
            f"{state}" + (f" ({onednn_source})" if onednn_source else ""))


NETWORKS = ("Generator", "Discriminator")


def apply_hardware_policy(strategy, filter_gradient="auto", fused_resampling=None):
    """Chooses the networks' hardware arguments once for this process (`sagan_tf.machine.network_settings` of
    the detected hardware) and binds them in gin to Generator and Discriminator, before the model is built:
    with "auto", a binding of the config wins over the policy, while a forced `filter_gradient` ("onednn",
    "matmul") and a `fused_resampling` given here win over the config. Returns the `NetworkSettings` the
    generator gets, for the start-up line (its reason says where a binding of the config came from)."""
    chosen = machine.network_settings(detect_hardware(strategy), filter_gradient,
                                       True if fused_resampling is None else fused_resampling)
    forced = {"filter_gradient": filter_gradient != "auto", "fused_resampling": fused_resampling is not None}
    effective = {}
    for network in NETWORKS:
        for name, value in chosen.as_kwargs().items():
            key = f"{network}.{name}"
            if forced[name] or not config_lib.is_bound(key):
                with gin.unlock_config():
                    gin.bind_parameter(key, value)
            elif network == "Generator":
                effective[name] = gin.query_parameter(key)
    if not effective:
        return chosen
    return dataclasses.replace(chosen, **effective, reason="the config's binding" if "filter_gradient" in effective
                               else chosen.reason)


@gin.configurable("train", module="sagan_tf.trainer")
@dataclasses.dataclass
class TrainConfig:
    """A training run's settings; gin binds them as `train.<field>`.

    input_spec: the `InputSpec` of `build_input` (gin: `train.input_spec = @build_input()`).
    num_steps: total generator steps (a resumed run stops at the same total).
    steps_per_execution: train steps inside one tf.function call (TPU-style loops).
    log_every, checkpoint_every, sample_every: intervals in steps (0 or None: never).
    keep_checkpoints: checkpoints kept by the CheckpointManager (None: every one).
    generator_optimizer, discriminator_optimizer: optimizer classes or factories, called inside
        the strategy scope (gin: `@generator/sagan_tf.optimizers.FusedAdam`, scoped learning rates).
    jit_compile: XLA-compile the train step.
    mixed_precision: "auto" (the default: mixed_bfloat16 where bfloat16 is native, on a TPU, GPUs of compute
        capability 8.0 or later or a CPU with AVX512_BF16 or AMX; float32 elsewhere), None (float32),
        "mixed_bfloat16" or "mixed_float16" (with dynamic loss scaling). Weights, optimiser states and the EMA
        stay float32, and so do softmax, the spectral-norm power iteration and the networks' outputs.
    checkpoint_input: save the input iterator's position in checkpoints, so a resumed run reads
        the data a continuous run would have (costs the shuffle buffer's size on disk).
    num_samples: images in the sample grid (fixed z and labels).
    seed: the run seed (`--seed`): initial weights (`keras.utils.set_random_seed`), the z stream
        (unless `SAGAN.seed` is bound), data order and flips (unless `build_input.seed` is
        bound), and the fixed sample z.
    deterministic: TensorFlow op determinism (`tf.config.experimental.enable_op_determinism`)
        and a deterministic input pipeline: two runs of one config and seed on one machine give
        bit-identical losses. Slower; it stays on for the rest of the process.
    eval_every: evaluate FID/KID/IS every this many steps (0: never) with the evaluation given to
        `train` (the train CLI builds it from the gin-configured `Evaluator` and `evaluation_input()`),
        and once at step 0 on a fresh start (the untrained generator); scalars go to `model_dir/eval`,
        the best-FID checkpoint (step 0 excluded) to `model_dir/best` (see `sagan_tf.eval.periodic`).
    """

    input_spec: Any = gin.REQUIRED
    num_steps: int = 1000
    steps_per_execution: int = 1
    log_every: int = 50
    checkpoint_every: int = 500
    sample_every: int = 500
    keep_checkpoints: int = 3
    generator_optimizer: Callable = optimizers.FusedAdam
    discriminator_optimizer: Callable = optimizers.FusedAdam
    jit_compile: bool = False
    mixed_precision: Optional[str] = "auto"
    checkpoint_input: bool = True
    num_samples: int = 64
    seed: int = 0
    eval_every: int = 0
    deterministic: bool = False

    def __post_init__(self):
        """Raises ConfigError (a ValueError the commands print as one line) naming the first bad setting."""
        _check_precision(self.mixed_precision)
        # (least value, whether None is allowed): an interval of 0 or None is never, keep_checkpoints None keeps all.
        counts = {"num_steps": (0, False), "steps_per_execution": (1, False), "seed": (0, False),
                  "num_samples": (1, False), "keep_checkpoints": (1, True), "log_every": (0, True),
                  "checkpoint_every": (0, True), "sample_every": (0, True), "eval_every": (0, True)}
        for name, (least, none_ok) in counts.items():
            value = getattr(self, name)
            if value is None and none_ok:
                continue
            whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not whole or value < least:
                raise config_lib.ConfigError(f"train.{name} = {value!r} is not a whole number >= {least}"
                                             + (" or None" if none_ok else ""),
                                             f"bind train.{name} to a whole number >= {least}")
            setattr(self, name, int(value))  # 1e4 from gin: 10000


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


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


class TrainingLoop:
    """Calls `step_fn` (one execution of `steps_per_execution` steps) until `num_steps` or SIGTERM, and
    after each call the due actions, in order. `current_step()` reads the step counter."""

    def __init__(self, step_fn, current_step, reduce, num_steps, steps_per_execution, actions):
        self.step_fn, self.current_step, self.reduce = step_fn, current_step, reduce
        self.num_steps, self.steps_per_execution, self.actions = num_steps, steps_per_execution, list(actions)

    def run(self, start):
        """Runs from `start`; returns True if stopped by SIGTERM. An action's exception ends the loop
        without the actions' `end` (nothing is saved after an error)."""
        preemption = _Preemption()
        try:
            for action in self.actions:
                action.begin(start)
            while self.current_step() < self.num_steps and not preemption.requested:
                outputs = self.step_fn()
                result = StepResult(self.current_step(), start, self.steps_per_execution, self.num_steps, outputs,
                                    self.reduce)
                for action in self.actions:
                    if action.due(result):
                        action(result)
        finally:
            preemption.restore()
        for action in self.actions:
            action.end(self.current_step(), preemption.requested)
        return preemption.requested


@dataclasses.dataclass
class Session:
    """What the actions of one run share."""

    model_dir: str
    model: Any
    config: TrainConfig
    manager: tf.train.CheckpointManager
    checkpoint_dir: str
    chief: bool
    writer: Any
    progress: Progress
    samples_dir: str


def default_actions(session, evaluation=None):
    """The loop's actions, in the order they run after a step: the NaN guard first (nothing is saved
    after a non-finite loss), then logging and the collapse warning, checkpoint, samples, evaluation."""
    config = session.config
    actions = [
        actions_lib.NonFiniteGuard(session.manager),
        actions_lib.LogMetrics(config.log_every, session.model, session.writer, session.progress,
                               config.input_spec.global_batch_size),
        actions_lib.CollapseWarning(config.log_every),
        actions_lib.SaveCheckpoint(config.checkpoint_every, session.manager),
        actions_lib.WriteSamples(config.sample_every, session.model, session.writer, session.samples_dir,
                                 sample_grid_inputs(session.model.num_classes, config.num_samples,
                                                    session.model.generator.dim_z, config.seed),
                                 session.chief),
    ]
    if config.eval_every and evaluation is not None:
        evaluation.start(session.model_dir, checkpointing.weights_checkpoint(session.model), session.chief,
                         session.checkpoint_dir)
        actions.append(actions_lib.Evaluate(config.eval_every, evaluation, session.model))
    return actions


def train(model_dir, strategy, config=None, evaluation=None, actions=()):
    """Trains a SAGAN, resuming from the latest checkpoint in `model_dir` if there is one.

    Args:
        model_dir: checkpoints, TensorBoard events, sample grids, the operative gin config and the
            model's Keras config (`sagan_tf.restore` reads them back).
        strategy: a `tf.distribute.Strategy`.
        config: a `TrainConfig`; None: the gin-configured one (`train.*` bindings).
        evaluation: a `sagan_tf.eval.periodic.PeriodicEvaluation`, needed when `config.eval_every > 0`.
        actions: more `sagan_tf.actions.Action`s, run after the default ones.

    Returns:
        The trained `SAGAN` model.
    """
    config = config or TrainConfig()
    config = copy.copy(config)
    config.mixed_precision = resolve_precision(config.mixed_precision)
    replicas = strategy.num_replicas_in_sync
    check_batch_size(config.input_spec.global_batch_size, replicas)
    if config.eval_every and evaluation is None:
        raise ValueError("`eval_every` > 0 needs an `evaluation` (sagan_tf.eval.periodic.PeriodicEvaluation).")
    keras.utils.set_random_seed(config.seed)  # before any layer exists: every initializer draws from it
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(config.mixed_precision or "float32")
    try:
        return _train(model_dir, strategy, config, evaluation, actions)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _optimizer(factory, mixed_precision):
    optimizer = factory()
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _train(model_dir, strategy, config, evaluation, extra_actions):
    spec = config.input_spec
    with strategy.scope():
        model = build_model(spec)
        model.compile(_optimizer(config.generator_optimizer, config.mixed_precision),
                      _optimizer(config.discriminator_optimizer, config.mixed_precision))
        if feeding.feeds_from_host(strategy):
            feed = feeding.ReplicaFeed(spec, strategy, config.seed, config.deterministic)
            position, next_batch = feed.iterator, feed.next
        else:  # a TPU's infeed: its position is not checkpointed
            iterator = iter(spec.distribute(strategy, config.seed, config.deterministic))
            position, next_batch = None, lambda: next(iterator)  # noqa: E731
        saved = position if config.checkpoint_input else None
        layout = feeding.input_layout(spec, strategy) if saved is not None else None
        checkpoint = checkpointing.training_checkpoint(model, saved, layout)
    tf.io.gfile.makedirs(model_dir)  # only now: the input and the networks are made, so their errors came first
    chief = is_chief(strategy)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    keep = config.keep_checkpoints
    if not chief:  # every worker saves (the save is collective); only the chief's files are kept
        checkpoint_dir = os.path.join(model_dir, "workers", f"worker_{strategy.cluster_resolver.task_id}")
        keep = 1
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, keep)
    if latest:
        _restore(checkpoint, latest, checkpoint_dir if not chief else None, model, layout)
    if chief:
        with tf.io.gfile.GFile(os.path.join(model_dir, "operative_config.gin"), "w") as f:
            f.write(gin.operative_config_str())
        restore.write_model(model_dir, model, DataFacts.of(spec))

    # autograph=False: the step's Python control flow is static (loops over layers and D steps), so it is
    # traced as written (converting its functions costs about 2 s of every run's start).
    @tf.function(jit_compile=config.jit_compile, autograph=False)
    def one_step(data):
        return model.train_step(data)

    def loop_body(i):
        strategy.run(one_step, args=(next_batch(),))
        return i + 1

    @tf.function(autograph=False)
    def train_steps():
        if config.steps_per_execution == 1:
            return strategy.run(one_step, args=(next_batch(),))
        # A loop cannot carry the PerReplica values `strategy.run` returns with several local replicas, so
        # it carries only its counter and the step's outputs, its trackers' means (variables), are read once
        # after it. So the graph holds one copy of the step, which is traced and optimised once per replica
        # (see CHANGELOG.md for the start-up this saves).
        tf.while_loop(lambda i: i < config.steps_per_execution, loop_body, [tf.constant(0)])
        return strategy.run(model.tracked_results)

    def step():
        return int(scalar(model.g_optimizer.iterations))

    start = step()
    samples_dir = os.path.join(model_dir, "samples")
    os.makedirs(samples_dir, exist_ok=True)
    session = Session(
        model_dir, model, config, manager, checkpoint_dir, chief,
        tf.summary.create_file_writer(os.path.join(model_dir, "train")) if chief else tf.summary.create_noop_writer(),
        Progress(config.num_steps, start), samples_dir)
    print(f"Training {model_dir}: {'resuming at step %d' % start if start else 'new run'}, to step "
          f"{config.num_steps}; {type(strategy).__name__.lstrip('_')} with {replicas_text(strategy)}, global batch "
          f"{spec.global_batch_size}; data {spec.source_name}; seed {config.seed}; precision "
          f"{config.mixed_precision or 'float32'}.", flush=True)
    loop = TrainingLoop(train_steps, step,
                        lambda value: float(strategy.reduce("MEAN", value, axis=None)),
                        config.num_steps, config.steps_per_execution,
                        [*default_actions(session, evaluation), *extra_actions])
    try:
        loop.run(start)
    finally:
        session.writer.flush()
    if chief:
        _summary(session, start, step())
    return model


def _layout_text(layout):
    batch, replicas, pipelines = layout
    return (f"a global batch of {batch} over {replicas} replica{'s' if replicas > 1 else ''} and {pipelines} "
            f"input pipeline{'s' if pipelines > 1 else ''}")


def _restore(checkpoint, latest, own_dir, model, layout):
    """Restores the chief's `latest` checkpoint; a worker (`own_dir`: its own folder) restores its own save of
    the same step instead: the same weights (the saves are collective), and its own input position, not
    the chief's shard's. `layout`: the input layout of this run's checkpointed position, None where the run
    checkpoints none. Without a save of its own, the worker's input starts its stream again (said in a line),
    as does the input of a run whose checkpoint holds no position or one saved with another layout (another
    global batch, replica count or number of workers: it does not fit this run's batches), and that of a run
    that keeps no position (said in a line too)."""
    source = latest
    if layout is None:
        print("This run keeps no input position (train.checkpoint_input = False, or a TPU's infeed): its input "
              "starts again from the beginning of its stream.", flush=True)
    if own_dir is not None:
        own = tf.train.latest_checkpoint(own_dir)
        if own and checkpointing.step_of(own) == checkpointing.step_of(latest):
            source = own
        elif layout is not None:
            print(f"No checkpoint of this worker at step {checkpointing.step_of(latest)} in {own_dir}: its input "
                  "starts again from the beginning of its shard.", flush=True)
            source = None
    position, saved_layout = checkpointing.saved_input(source) if layout is not None and source else (False, None)
    if layout is not None and source is not None and not position:
        print(f"{source} holds no input position (saved on a TPU or with train.checkpoint_input = False): this "
              "run's input starts again from the beginning of its stream.", flush=True)
        latest, source = source, None
    elif saved_layout is not None and saved_layout != tuple(layout):
        print(f"The input position in {source} was saved with {_layout_text(saved_layout)}; this run reads "
              f"{_layout_text(layout)}: its input starts again from the beginning of its stream.", flush=True)
        latest, source = source, None
    if source is None:
        checkpointing.training_checkpoint(model).restore(latest).expect_partial().assert_existing_objects_matched()
    elif layout is not None and saved_layout is None:  # saved before layouts were: all but that
        checkpointing.training_checkpoint(model, checkpoint.iterator).restore(source).assert_existing_objects_matched()
    else:
        checkpoint.restore(source).assert_existing_objects_matched()
    print(f"Resumed from {source or latest} at step {int(scalar(model.g_optimizer.iterations))}.")


def replicas_text(strategy):
    replicas = strategy.num_replicas_in_sync
    return f"{replicas} replica{'s' if replicas > 1 else ''}"


def _summary(session, start, end):
    """The last lines of a run: what it did and what to type next."""
    seconds = time.time() - session.progress.start
    grids = sorted(os.listdir(session.samples_dir))
    python = os.path.relpath(sys.executable)
    python = sys.executable if python.startswith("..") else python
    model_dir = session.model_dir
    session.progress.message(
        f"Done: steps {start}-{end} in {format_duration(seconds)} "
        f"({(end - start) * session.config.input_spec.global_batch_size / max(seconds, 1e-9):.1f} images/s). "
        f"Last checkpoint: {session.manager.latest_checkpoint}. Last samples: "
        f"{os.path.join(session.samples_dir, grids[-1]) if grids else 'none'}.\n"
        f"  Evaluate: {python} -m sagan_tf.evaluate --model_dir={model_dir}\n"
        f"  Export:   {python} -m sagan_tf.export --model_dir={model_dir} --export_dir={os.path.join(model_dir, 'export')}")
