"""Evaluation during training: metrics as TensorBoard scalars and JSON lines, the best-FID checkpoint kept.

`model_dir/eval/` receives the TensorBoard events (`eval/fid`, `eval/kid`, `eval/is`, ...) and
`metrics.jsonl` (one line per evaluation); `model_dir/best/` holds the checkpoint with the lowest FID
so far and `model_dir/eval/best.json` says its step and metrics. The best FID survives a resume.
"""

import json
import os
import weakref

import gin
import keras
import tensorflow as tf

from sagan_tf import records
from sagan_tf.models.sagan import standing_statistics


@gin.configurable(denylist=["batch_size"])
def evaluation_input(batch_size, source=None, seed=0):
    """The evaluation `InputSpec`: the training data (or `source`), one pass, no flips, in a fixed-seed
    random order, so that the first N images (real statistics use N) are a sample of the whole
    dataset and not its first N, which are one or two classes in a class-sorted dataset.

    The gin bindings of `build_input` (source, resolution, channels, resize mode, shuffle buffer)
    apply; `source` (e.g. `@fashion_mnist_source(split='test')` under `evaluation_input.source`)
    replaces the source; `seed` fixes the sample (the same real images at every evaluation).
    """
    from sagan_tf.data.pipeline import build_input  # noqa: PLC0415  (avoids an import cycle)

    overrides = {"source": source} if source is not None else {}
    return build_input(global_batch_size=batch_size, random_flip=False, shuffle=True, repeat=False,
                       cache=False, deterministic=True, seed=seed, **overrides)


@gin.configurable(denylist=["evaluator", "input_spec"])
class PeriodicEvaluation:
    """Evaluation during training (`train.eval_every`): an `Evaluator` and the evaluation `InputSpec`
    are given; the trainer calls `start(...)` with the run's directory and weights checkpoint, then the
    object at step 0 and every `eval_every` steps (see `sagan_tf.actions.Evaluate`).

    `compare_raw` (gin: `PeriodicEvaluation.compare_raw = True`): when the model keeps an EMA generator,
    also evaluate the raw generator at every point (`eval/raw_fid`, ... and "raw" in metrics.jsonl);
    the EMA one stays the one whose FID picks the best checkpoint.

    A run in mixed precision is evaluated in float32, as `sagan_tf.evaluate` evaluates it: the classifier is
    built and run in float32, and a float32 copy of each evaluated generator, made at the first evaluation,
    takes its weights at every one."""

    def __init__(self, evaluator, input_spec, compare_raw=False):
        self.evaluator, self.input_spec, self.compare_raw = evaluator, input_spec, compare_raw
        self._float32_copies = weakref.WeakKeyDictionary()  # network -> its float32 copy

    def in_float32(self, network):
        """`network` when it computes in float32, else its float32 copy holding its current weights."""
        if network.compute_dtype == "float32":
            return network
        copy = self._float32_copies.get(network)
        if copy is None:
            copy = network.__class__.from_config({**network.get_config(), "dtype": "float32"})
            copy.build()
            self._float32_copies[network] = copy
        copy.set_weights(network.get_weights())
        return copy

    @classmethod
    def from_gin(cls):
        """The gin-configured `Evaluator` and `evaluation_input()` (what the train CLI uses)."""
        from sagan_tf.eval.evaluator import Evaluator  # noqa: PLC0415  (loads tensorflow-gan's eval)

        evaluator = Evaluator()
        return cls(evaluator, evaluation_input(evaluator.batch_size))

    def start(self, model_dir, checkpoint, chief, worker_dir=None):
        """Where results and the best checkpoint go; reads the best so far (it survives a resume)."""
        self.chief = chief
        self.eval_dir = os.path.join(model_dir, "eval")
        os.makedirs(self.eval_dir, exist_ok=True)
        self.best_path = os.path.join(self.eval_dir, "best.json")
        best_dir = os.path.join(model_dir, "best") if chief else os.path.join(worker_dir, "best")
        self.manager = tf.train.CheckpointManager(checkpoint, best_dir, max_to_keep=1)
        self.best = records.read_json(self.best_path)
        self.writer = tf.summary.create_file_writer(self.eval_dir) if chief else tf.summary.create_noop_writer()

    def __call__(self, model, step, track_best=True):
        """Evaluates the sampling generator at `step`; returns the metrics dict.

        With `track_best=False` (the untrained generator at step 0) the result is logged but never
        becomes the best checkpoint."""
        training_policy = keras.mixed_precision.dtype_policy()
        keras.mixed_precision.set_dtype_policy("float32")  # what the classifier (built on first use) computes in
        try:
            return self._evaluate(model, step, track_best)
        finally:
            keras.mixed_precision.set_dtype_policy(training_policy)

    def _evaluate(self, model, step, track_best):
        if model.ema_generator is not None and model.ema_standing_batches:
            # Standing statistics are measured once, on the network scored: in a mixed-precision run its float32
            # copy, as `sagan_tf.evaluate`'s float32 model does (`sampling_generator` would measure them on the
            # bfloat16 EMA generator as well).
            model.sync_ema_generator()
            network = self.in_float32(model.ema_generator)
            standing_statistics(network, model.ema_standing_batches, model.ema_standing_batch_size)
        else:
            network = self.in_float32(model.sampling_generator)
        results = self.evaluator.evaluate(network, model.num_classes, self.input_spec)
        results["step"] = int(step)
        results["generator"] = "ema" if model.ema_generator is not None else "raw"
        if self.compare_raw and model.ema_generator is not None:
            raw = self.evaluator.evaluate(self.in_float32(model.generator), model.num_classes, self.input_spec)
            results["raw"] = {k: raw[k] for k in ("fid", "kid", "is", "intra_fid") if k in raw}
        with self.writer.as_default(step=step):
            for key in ("fid", "kid", "is", "is_std", "intra_fid"):
                if key in results:
                    tf.summary.scalar(f"eval/{key}", results[key])
                if key in results.get("raw", {}):
                    tf.summary.scalar(f"eval/raw_{key}", results["raw"][key])
        self.writer.flush()
        improved = track_best and "fid" in results and (self.best is None or results["fid"] < self.best["fid"])
        if improved:  # every worker saves (collective); only the chief's files are kept
            path = self.manager.save(checkpoint_number=step)
            self.best = {**results, "checkpoint": path}
        if self.chief:
            with open(os.path.join(self.eval_dir, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(results) + "\n")
            if improved:
                records.write_json(self.best_path, self.best)
        summary = ", ".join(f"{k}={results[k]:.4g}" for k in ("fid", "kid", "is") if k in results)
        if "raw" in results:
            summary += "; raw generator " + ", ".join(f"{k}={v:.4g}" for k, v in results["raw"].items())
        print(f"Evaluation at step {step}: {summary}{' (best so far)' if improved else ''}")
        return results
