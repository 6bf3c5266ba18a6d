"""What the training loop does between steps, one class per concern (in the manner of Orbit's actions).

The loop (`sagan_tf.trainer.TrainingLoop`) runs steps; after each call of the compiled step function it
hands a `StepResult` to every action whose interval was crossed, in the order given. An action has
`every` (steps; 0 or None: never), may widen `due`, and may act at the start (`begin`) and at the end
(`end`). A new periodic task is a new `Action`, passed in `sagan_tf.trainer.train(..., actions=[...])`
or added to `default_actions`.
"""

import dataclasses
import os
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from sagan_tf import compat, memory
from sagan_tf.images import labelled_grid
from sagan_tf.layers import SelfAttention, SpectralNormalization


def scalar(variable):
    """A Python float of a (possibly distributed) scalar Keras variable or tensor."""
    return float(tf.convert_to_tensor(getattr(variable, "value", variable)))


@dataclasses.dataclass
class StepResult:
    """What one call of the step function produced.

    step: generator steps done (absolute); start: the step this process started from;
    outputs: the step's outputs (per replica under a strategy); reduce: (per-replica value) -> float.
    """

    step: int
    start: int
    steps_per_execution: int
    num_steps: int
    outputs: dict
    reduce: Callable
    _values: Optional[dict] = None

    @property
    def first(self):
        """The first call of this process."""
        return self.step == self.start + self.steps_per_execution

    @property
    def final(self):
        return self.step >= self.num_steps

    def crossed(self, every):
        """Whether this call passed a multiple of `every`."""
        return bool(every) and self.step % every < self.steps_per_execution

    def value(self, name):
        return self.values()[name] if self._values is not None else self.reduce(self.outputs[name])

    def values(self):
        """Every output as a float, plus d_gap (computed once)."""
        if self._values is None:
            self._values = {k: self.reduce(v) for k, v in self.outputs.items()}
            self._values["d_gap"] = self._values["d_real"] - self._values["d_fake"]
        return self._values


class Action:
    """Runs after every call of the step function that crosses a multiple of `every`."""

    every = 0

    def begin(self, start):
        """Before the first step of this process (`start`: the step resumed from, 0 for a new run)."""

    def due(self, result):
        return result.crossed(self.every)

    def __call__(self, result):
        raise NotImplementedError

    def end(self, step, preempted):
        """After the loop ended at `step` without an error (`preempted`: on SIGTERM)."""


class ReleaseLibraryPages(Action):
    """After the first step of the process (whose tracing and compilation touch more library code than
    the steps after it): unmaps the clean library pages touched so far (`sagan_tf.memory`), so that they
    leave the resident set; what later steps, checkpoints or evaluations touch comes back. The train
    command adds it."""

    def due(self, result):
        return result.first

    def __call__(self, result):
        memory.release_library_pages()


class DivergedError(RuntimeError):
    """Training produced NaN or Inf; the run stopped without saving."""


def check_finite(values, step, checkpoint):
    """Raises DivergedError naming the non-finite values of `values` (a dict of floats)."""
    bad = sorted(name for name, value in values.items() if not np.isfinite(value))
    if bad:
        where = f"the latest checkpoint, {checkpoint}, is the last good one" if checkpoint else "no checkpoint was saved"
        raise DivergedError(f"Training diverged at step {step}: {', '.join(bad)} not finite. Stopped without "
                            f"saving; {where}. Lower the learning rates or train in float32 (--precision=float32).")


class NonFiniteGuard(Action):
    """Every step, before anything is saved: stops the run when a loss is NaN or Inf (running means of
    the losses turn NaN and stay NaN, so a later check still sees it)."""

    every = 1

    def __init__(self, manager):
        self.manager = manager

    def __call__(self, result):
        check_finite({k: result.value(k) for k in ("d_loss", "g_loss")}, result.step, self.manager.latest_checkpoint)


def _layers_of_type(model, cls):
    return [layer for layer in compat.sublayers(model) if isinstance(layer, cls)]


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


class LogMetrics(Action):
    """Every `every` steps and at the last: losses, images/s, attention gammas, SN sigmas and learning
    rates to TensorBoard and the progress display; then the running means restart."""

    def __init__(self, every, model, writer, progress, global_batch_size):
        self.every, self.model, self.writer, self.progress = every, model, writer, progress
        self.global_batch_size = global_batch_size

    def begin(self, start):
        self.tick, self.last_step = time.time(), start

    def due(self, result):
        return result.crossed(self.every) or result.final

    def __call__(self, result):
        values = dict(result.values())
        images = (result.step - self.last_step) * self.global_batch_size
        values["img/s"] = images / max(time.time() - self.tick, 1e-9)
        with self.writer.as_default(step=result.step):
            for name, value in {**values, **diagnostics(self.model)}.items():
                tf.summary.scalar(name.replace("img/s", "images_per_second"), value)
            tf.summary.scalar("learning_rate/generator", scalar(self.model.g_optimizer.learning_rate))
            tf.summary.scalar("learning_rate/discriminator", scalar(self.model.d_optimizer.learning_rate))
        self.progress.update(result.step, values)
        for tracker in self.model.trackers.values():
            tracker.reset_state()
        self.tick, self.last_step = time.time(), result.step


class CollapseWarning(Action):
    """Warns once each when, for `patience` logs in a row, D's loss stays at ~0 (it separates everything)
    or G's gradient norm at ~0 (G no longer learns)."""

    def __init__(self, every=0, patience=10, threshold=1e-3, grad_threshold=1e-6, output=print):
        self.every, self.patience, self.threshold, self.grad_threshold = every, patience, threshold, grad_threshold
        self.output = output
        self.count, self.grad_count, self.warned, self.grad_warned = 0, 0, False, False

    def due(self, result):
        return result.crossed(self.every) or result.final

    def __call__(self, result):
        self.update(result.value("d_loss"), result.step, result.values().get("g_grad_norm"))

    def update(self, d_loss, step, g_grad_norm=None):
        self.count = self.count + 1 if d_loss < self.threshold else 0
        if self.count >= self.patience and not self.warned:
            self.warned = True
            self.output(f"\nWarning: D loss below {self.threshold} for {self.count} logs (step {step}): D separates "
                        "real from fake perfectly and G's gradients may vanish; training may have collapsed.")
        if g_grad_norm is not None:
            self.grad_count = self.grad_count + 1 if g_grad_norm < self.grad_threshold else 0
            if self.grad_count >= self.patience and not self.grad_warned:
                self.grad_warned = True
                self.output(f"\nWarning: G's gradient norm below {self.grad_threshold} for {self.grad_count} logs "
                            f"(step {step}): G has stopped learning.")


class SaveCheckpoint(Action):
    """Every `every` steps, and at the end of a run that was not stopped by an error (also on SIGTERM),
    never after an error, so that the last good checkpoint stays the latest. Every worker saves (collective)."""

    def __init__(self, every, manager):
        self.every, self.manager = every, manager

    def __call__(self, result):
        self.manager.save(checkpoint_number=result.step)

    def end(self, step, preempted):
        if step > 0:
            self.manager.save(checkpoint_number=step)
        if preempted:
            print(f"SIGTERM: saved a checkpoint at step {step} and stopped.")


class WriteSamples(Action):
    """The fixed-z sample grid (PNG in `samples_dir` and TensorBoard): after the first step of this
    process, every `every` steps and at the end (not on SIGTERM). Chief only."""

    def __init__(self, every, model, writer, samples_dir, grid_inputs, chief=True):
        self.every, self.model, self.writer, self.samples_dir = every, model, writer, samples_dir
        self.z, self.labels, self.row_names = grid_inputs
        self.chief = chief
        self.last = None

    def due(self, result):
        return result.crossed(self.every) or result.first

    def __call__(self, result):
        self.write(result.step)

    def end(self, step, preempted):
        if not preempted:
            self.write(step)

    def write(self, step):
        if not self.chief:
            return
        images = self.model.sampling_generator(self.z, self.labels, training=False)
        grid = labelled_grid(images, self.row_names)
        self.last = os.path.join(self.samples_dir, f"step_{step:07d}.png")
        tf.io.write_file(self.last, tf.io.encode_png(grid))
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None], max_outputs=1)


class Evaluate(Action):
    """Every `every` steps: a `PeriodicEvaluation` (FID/KID/IS, best-FID checkpoint); at step 0 of a new
    run, the untrained generator (the curve's first point, never the best)."""

    def __init__(self, every, evaluation, model):
        self.every, self.evaluation, self.model = every, evaluation, model

    def begin(self, start):
        if start == 0:
            self.evaluation(self.model, 0, track_best=False)

    def __call__(self, result):
        self.evaluation(self.model, result.step)
