"""The generator as a SavedModel for TF Serving: signatures a client calls without sagan_tf.

Signatures of `export_generator(...)`'s SavedModel:
- `serving_default(z float32 [N, dim_z], labels int32 [N])` -> `images` uint8 [N, H, W, 3]
  (`labels` only for conditional generators). Grey generators are replicated to RGB.
- `sample(seed int64 [], count int32 [], labels int32 [count or 0], truncation float32 [])` ->
  `images` uint8 [N, H, W, 3], `labels` int32 [N], `z` float32 [N, dim_z]. z is drawn in the graph
  (stateless, so a seed always gives the same images); `truncation > 0` draws it from the normal
  truncated to [-truncation, truncation] (the truncation trick), 0 from the plain normal. Empty
  `labels` draws them uniformly from the seed.
- `sample_png`: the same inputs -> `png_bytes` string [N], PNG-encoded images (TF Serving's REST API
  returns outputs named *_bytes base64-encoded).

`export_generator` also writes TF Serving's warmup file, `assets.extra/tf_serving_warmup_requests`: a
TFRecord file of `PredictionLog`s (one `PredictRequest` per warmed signature and batch size) that the
server replays when it loads the version, before it reports the version available, so that the first
client request does not pay for building the session's executors and the kernels' per-shape set-up.
It needs `tensorflow-serving-api` (its protos), a dependency of export.

Bad requests (z of the wrong width, labels outside [0, num_classes), mismatched lengths, a
negative count or truncation) fail inside the graph with an InvalidArgumentError that says which.
"""

import json
import os

import numpy as np
import tensorflow as tf

from sagan_tf import images as images_lib

_SQRT2 = 1.4142135623730951
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")  # the name TF Serving looks for
# Each signature is its own feed/fetch set, so its own executor and graph optimisation on the first call
# (seconds, against milliseconds for a new batch size of a warmed signature): warm every signature.
WARMUP_SIGNATURES = ("serving_default", "sample", "sample_png")
WARMUP_BATCH_SIZES = (1, 8)
SERVING_API = "tensorflow-serving-api==2.21.0"


def serving_apis():
    """TF Serving's request protos (`predict_pb2`, `prediction_log_pb2`); raises ImportError saying how to
    install them. TensorFlow's own wheel does not carry them."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(f"TF Serving's warmup records need the {SERVING_API} package ({error}): "
                          f"pip install --no-deps {SERVING_API}") from None
    return predict_pb2, prediction_log_pb2


def error_reason(error):
    """The reason of a serving `InvalidArgumentError`, first: TensorFlow's message starts with "Graph
    execution error:" and node details, and says what was wrong (`z must be [N, 128]; received width 5`)
    several lines below."""
    text = getattr(error, "message", None) or str(error)
    marker = "assertion failed: ["
    if marker in text:
        reason = text.split(marker, 1)[1]
        return reason.split("]\n", 1)[0].split("]\t", 1)[0].rstrip("]").strip()
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(noise)]
    return lines[0] if lines else text.strip()


def truncated_normal(shape, seed, truncation):
    """Standard normal values truncated to [-truncation, truncation] (the truncation trick); truncation 0:
    the plain normal. Stateless (`seed`: int [2]) and drawn by inverse CDF, u uniform in (Phi(-t), Phi(t)),
    z = Phi^-1(u), so every value costs one draw and the same seed gives the same z at any truncation."""
    truncation = tf.convert_to_tensor(truncation, tf.float32)
    t = tf.where(truncation > 0.0, truncation, tf.constant(float("inf")))
    low = 0.5 * tf.math.erfc(t / _SQRT2)
    u = tf.random.stateless_uniform(shape, seed, minval=0.0, maxval=1.0)
    u = tf.clip_by_value(low + u * (1.0 - 2.0 * low), 1e-7, 1.0 - 1e-7)
    return tf.math.ndtri(u)


def _check(condition, message):
    return tf.debugging.Assert(condition, [message])


class GeneratorModule(tf.Module):
    """Wraps a built generator; its tf.functions are the exported signatures."""

    def __init__(self, generator, num_classes):
        super().__init__(name="sagan_generator")
        self.generator = generator
        # TF Serving restores variables through the SavedModel's TF1 saver: it finds the tf.Variables
        # behind Keras 3 variables only when they are tracked directly (without this, every read fails
        # with "Could not find variable ..." although tf.saved_model.load works).
        self.tf_variables = [v.value for v in generator.variables]
        self.dim_z = int(generator.dim_z)
        self.num_classes = int(num_classes)
        self.resolution = int(generator.resolution)
        self._spec_z = tf.TensorSpec([None, None], tf.float32, name="z")
        self._spec_labels = tf.TensorSpec([None], tf.int32, name="labels")
        sample_specs = [
            tf.TensorSpec([], tf.int64, name="seed"),
            tf.TensorSpec([], tf.int32, name="count"),
            tf.TensorSpec([None], tf.int32, name="labels"),
            tf.TensorSpec([], tf.float32, name="truncation"),
        ]
        if self.num_classes:
            self.serve = tf.function(self._serve_conditional, input_signature=[self._spec_z, self._spec_labels])
        else:
            self.serve = tf.function(self._serve_unconditional, input_signature=[self._spec_z])
        self.sample = tf.function(self._sample, input_signature=sample_specs)
        self.sample_png = tf.function(self._sample_png, input_signature=sample_specs)

    def _check_z(self, z):
        width = tf.shape(z)[1]
        return _check(tf.equal(width, self.dim_z),
                      tf.strings.format("z must be [N, {}]; received width {}", (self.dim_z, width)))

    def _check_labels(self, labels, count):
        checks = [_check(tf.equal(tf.size(labels), count),
                         tf.strings.format("labels must have one entry per image: {} labels for {} images",
                                           (tf.size(labels), count)))]
        if self.num_classes:
            in_range = tf.reduce_all((labels >= 0) & (labels < self.num_classes))
            checks.append(_check(in_range, tf.strings.format(
                "labels must be in [0, {}); received {}", (self.num_classes, labels), summarize=16)))
        return checks

    def _images(self, z, labels):
        images = self.generator(z, labels if self.num_classes else None, training=False)
        return images_lib.to_uint8(images, rgb=True)

    def _serve_conditional(self, z, labels):
        with tf.control_dependencies([self._check_z(z), *self._check_labels(labels, tf.shape(z)[0])]):
            return {"images": self._images(tf.identity(z), labels)}

    def _serve_unconditional(self, z):
        with tf.control_dependencies([self._check_z(z)]):
            return {"images": self._images(tf.identity(z), None)}

    def _draw(self, seed, count, labels, truncation):
        checks = [
            _check(count >= 0, tf.strings.format("count must be >= 0; received {}", count)),
            _check(truncation >= 0.0, tf.strings.format("truncation must be >= 0 (0: none); received {}",
                                                        truncation)),
        ]
        with tf.control_dependencies(checks):
            count = tf.identity(count)
        seeds = tf.random.experimental.stateless_split(tf.stack([seed, tf.constant(0, tf.int64)]), 2)
        shape = tf.stack([count, self.dim_z])
        z = truncated_normal(shape, seeds[0], truncation)
        if self.num_classes:
            drawn = tf.random.stateless_uniform([count], seeds[1], 0, self.num_classes, dtype=tf.int32)
            labels = tf.cond(tf.size(labels) > 0, lambda: labels, lambda: drawn)
            with tf.control_dependencies(self._check_labels(labels, count)):
                labels = tf.identity(labels)
        else:
            labels = tf.zeros([count], tf.int32)
        return z, labels

    def _sample(self, seed, count, labels, truncation):
        z, labels = self._draw(seed, count, labels, truncation)
        return {"images": self._images(z, labels), "labels": labels, "z": z}

    def _sample_png(self, seed, count, labels, truncation):
        images = self._sample(seed, count, labels, truncation)["images"]
        png = tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)
        return {"png_bytes": png}


def warmup_inputs(signature_name, batch_size, dim_z, num_classes):
    """The inputs (numpy, with the signature's dtypes) of a typical request of `batch_size` images:
    `serving_default` gets fixed normal z (and labels cycling through the classes), `sample` a seed and
    a count with labels drawn in the graph."""
    if signature_name == "serving_default":
        inputs = {"z": np.random.RandomState(batch_size).standard_normal((batch_size, dim_z)).astype(np.float32)}
        if num_classes:
            inputs["labels"] = (np.arange(batch_size) % num_classes).astype(np.int32)
        return inputs
    if signature_name in ("sample", "sample_png"):
        return {"seed": np.array(batch_size, np.int64), "count": np.array(batch_size, np.int32),
                "labels": np.zeros([0], np.int32), "truncation": np.array(0.0, np.float32)}
    raise ValueError(f"No warmup inputs for a signature named {signature_name!r} (serving_default, sample or "
                     f"sample_png). Received: `signature_name={signature_name!r}`")


def warmup_requests(model_name, dim_z, num_classes, signatures=WARMUP_SIGNATURES, batch_sizes=WARMUP_BATCH_SIZES):
    """`PredictionLog`s holding one `PredictRequest` (model_spec.name = `model_name`, as TF Serving's
    --model_name) per signature and batch size."""
    predict_pb2, prediction_log_pb2 = serving_apis()
    logs = []
    for signature_name in signatures:
        for batch_size in batch_sizes:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for key, value in warmup_inputs(signature_name, batch_size, dim_z, num_classes).items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(saved_model_dir, logs):
    """Writes `logs` as `<saved_model_dir>/assets.extra/tf_serving_warmup_requests`; returns its path."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def export_generator(generator, num_classes, export_dir, version, description=None, model_name=None,
                     warmup_batch_sizes=WARMUP_BATCH_SIZES):
    """Writes `<export_dir>/<version>/` (TF Serving's layout) atomically; returns that path.

    `description` (a JSON-able dict) is stored as `assets/sagan_tf_export.json`. An existing
    version is never overwritten: pick another `version`. The warmup requests (`WARMUP_SIGNATURES` at
    each of `warmup_batch_sizes`; none when empty) name the model `model_name`, by default the last
    folder of `export_dir` (TF Serving's --model_name for --model_base_path=export_dir).
    """
    path = os.path.join(export_dir, str(int(version)))
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"{path} already exists; TF Serving versions are immutable: pass another version.")
    model_name = model_name or os.path.basename(os.path.normpath(export_dir))
    warmup = (warmup_requests(model_name, int(generator.dim_z), num_classes, batch_sizes=warmup_batch_sizes)
              if warmup_batch_sizes else [])  # before anything is written: the protos may be missing
    module = GeneratorModule(generator, num_classes)
    signatures = {"serving_default": module.serve, "sample": module.sample, "sample_png": module.sample_png}
    tmp = os.path.join(export_dir, f".tmp-{int(version)}")
    if tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp)
    tf.io.gfile.makedirs(export_dir)
    # Serving computes no gradients: the blocked attention path's custom gradient is not saved (tracing it
    # would need shapes an exported signature leaves open).
    tf.saved_model.save(module, tmp, signatures=signatures,
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    if description is not None:
        tf.io.gfile.makedirs(os.path.join(tmp, "assets"))
        with tf.io.gfile.GFile(os.path.join(tmp, "assets", "sagan_tf_export.json"), "w") as f:
            f.write(json.dumps(description, indent=2))
    if warmup:
        write_warmup_requests(tmp, warmup)
    tf.io.gfile.rename(tmp, path)  # TF Serving polls the base dir: it must never see a half-written version
    return path
