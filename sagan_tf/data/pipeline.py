"""The one tf.data input pipeline of training and evaluation.

source (unbatched uint8 images of any size, int labels) -> channels -> centre crop to a square ->
resize (or pad) to the model resolution -> [optional cache] -> random horizontal flip -> scale to
[-1, 1] -> per-replica batches with drop_remainder -> prefetch. `build_input` returns an input
function for `strategy.distribute_datasets_from_function`: each worker reads its own shard
(`tf.distribute.InputContext`) and batches `global_batch_size / num_replicas` images.
"""

import contextlib
import dataclasses
from typing import Any, Optional

import gin
import tensorflow as tf

from sagan_tf import compat

# TensorFlow's own global seed when none is set (random_seed.DEFAULT_GRAPH_SEED).
_PIPELINE_GLOBAL_SEED = 87654321


@contextlib.contextmanager
def seeded_by_arguments_only():
    """tf.data seeds each shuffle with (TensorFlow's global seed, the op's seed). Training sets the
    global seed (`keras.utils.set_random_seed`), so the same `seed` argument would give another order
    in an evaluation process than in the training process, and real statistics of another sample.
    While a pipeline is built the global part is pinned to TensorFlow's default, so its order depends
    on its `seed` argument only; the caller's global seed is put back after."""
    previous = compat.global_seed()
    tf.random.set_seed(_PIPELINE_GLOBAL_SEED)
    try:
        yield
    finally:
        tf.random.set_seed(previous)

from sagan_tf.data.files import DataError
from sagan_tf.data.sources import as_written


def to_channels(image, channels):
    """uint8 [..., C] with C in {1, 3, 4} -> [..., channels] (grey <-> RGB, alpha dropped); any leading dims."""
    c = image.shape[-1]
    if c == 4:
        image, c = image[..., :3], 3
    if c == channels:
        return image
    if channels == 3:
        return tf.repeat(image, 3, axis=-1)
    return tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)


def center_crop_square(image):
    """[H, W, C] -> [S, S, C] with S = min(H, W), centred."""
    shape = tf.shape(image)
    size = tf.minimum(shape[0], shape[1])
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def fit_to_resolution(image, resolution, mode="resize"):
    """Square uint8 [S, S, C] -> float32 [R, R, C] in [0, 255].

    mode "resize": bilinear with anti-aliasing (the paper's ImageNet pre-processing);
    mode "pad": centre the image on a black canvas (e.g. 28x28 Fashion-MNIST in 32x32), resizing
    down only if it is larger than R.
    """
    static = image.shape[0]
    image_f = tf.cast(image, tf.float32)
    if mode == "pad":
        if static is not None and static <= resolution:
            pad = resolution - static
            return tf.pad(image_f, [[pad // 2, pad - pad // 2], [pad // 2, pad - pad // 2], [0, 0]])
        mode = "resize"
    if mode != "resize":
        raise ValueError(f"`resize_mode` must be 'resize' or 'pad'. Received: `resize_mode={mode!r}`")
    if static == resolution:
        return image_f
    image_f = tf.image.resize(image_f, [resolution, resolution], method="bilinear", antialias=True)
    return tf.clip_by_value(image_f, 0.0, 255.0)


@dataclasses.dataclass
class InputSpec:
    """What `build_input` returns: the input function and what the model needs to know."""

    input_fn: object  # (tf.distribute.InputContext or None, seed, deterministic) -> per-replica batched Dataset
    num_classes: int
    resolution: int
    channels: int
    global_batch_size: int
    source_name: str

    def distribute(self, strategy, seed=None, deterministic=False):
        """The per-worker distributed dataset for `strategy`; `seed` is the run seed and `deterministic`
        forces a deterministic pipeline (see `build_input`)."""
        return strategy.distribute_datasets_from_function(lambda context: self.input_fn(context, seed, deterministic))


@gin.configurable
def build_input(
    source=gin.REQUIRED,
    resolution=32,
    global_batch_size=64,
    channels=3,
    random_flip=True,
    resize_mode="resize",
    shuffle=True,
    repeat=True,
    cache=False,
    deterministic=False,
    seed=None,
    shuffle_buffer=10_000,
):
    """Builds the input pipeline of a `Source` (see `sagan_tf.data.sources`).

    Args:
        source: a `Source` (e.g. `@synthetic_source()` in gin).
        resolution: output image size R.
        global_batch_size: images per step over all replicas; each replica gets an equal share.
        channels: 3 (RGB; grayscale is replicated) or 1 (RGB is converted to grey).
        random_flip: random horizontal flips (the paper's ImageNet augmentation).
        resize_mode: "resize" (centre crop + bilinear) or "pad".
        shuffle: shuffle examples (training; evaluation draws a fixed-seed sample). Sources held as
            a list (folders, arrays, the synthetic set) read a new permutation of the whole list in every
            epoch (a checkpoint of the input position stays a few KB); record
            sources (TFRecords, tfds) shuffle the order of their files, interleave them, and shuffle
            the encoded examples in a buffer of `shuffle_buffer`.
        repeat: repeat forever (training).
        cache: cache the decoded, resized images in memory (small datasets).
        deterministic: fixed order and augmentation for a given seed (slower); `input_fn`'s
            `deterministic=True` (training with `train.deterministic`) turns it on too.
        seed: shuffling and flip seed; None (default): the seed passed to `input_fn`, which training
            sets to the run seed (`train.seed`), or 0.
        shuffle_buffer: encoded examples in the shuffle buffer of record sources. Memory is the
            buffer times an encoded image (ImageNet JPEGs average ~110 KB: 10,000 is about 1.1 GB, and
            a checkpoint of the input position stores the buffer too).

    Returns:
        An `InputSpec`; `input_fn(ctx)` yields (float32 [B, R, R, channels] in [-1, 1], int32 [B]).
    """
    if channels not in (1, 3):
        raise DataError(f"build_input.channels = {channels!r} is not 1 or 3", "bind 1 (grey) or 3 (RGB)")
    if global_batch_size < 1:
        raise DataError(f"build_input.global_batch_size = {global_batch_size!r} is not positive", "bind 1 or more")
    if shuffle_buffer < 1:
        raise DataError(f"build_input.shuffle_buffer = {shuffle_buffer!r} is not positive", "bind 1 or more")
    pipeline = _Pipeline(source, resolution, global_batch_size, channels, random_flip, resize_mode, shuffle, repeat,
                         cache, deterministic, seed, shuffle_buffer)
    return InputSpec(pipeline.input_fn, source.num_classes, resolution, channels, global_batch_size, source.name)


@dataclasses.dataclass(frozen=True)
class _Pipeline:
    """`build_input`'s arguments, and the tf.data pipeline they describe."""

    source: Any
    resolution: int
    global_batch_size: int
    channels: int
    random_flip: bool
    resize_mode: str
    shuffle: bool
    repeat: bool
    cache: bool
    deterministic: bool
    seed: Optional[int]
    shuffle_buffer: int

    def check_label(self, image, label):
        num_classes = self.source.num_classes
        if num_classes:
            tf.debugging.assert_less(
                label, num_classes, message=f"A label of {self.source.name} is >= num_classes={num_classes}"
            )
            tf.debugging.assert_non_negative(label, message=f"A label of {self.source.name} is negative")
        return image, label

    def prepare(self, image, label):
        image = center_crop_square(to_channels(image, self.channels))
        image = fit_to_resolution(image, self.resolution, self.resize_mode)
        image.set_shape([self.resolution, self.resolution, self.channels])
        return image, tf.cast(label, tf.int32)

    def input_fn(self, input_context=None, seed=None, deterministic=False):
        """The per-replica batched dataset for `input_context` (None: one pipeline, the global batch)."""
        with seeded_by_arguments_only():
            return self.make(input_context, self.seed if self.seed is not None else (seed or 0), deterministic)

    def make(self, input_context, seed, deterministic):
        def augment(index, example):
            image, label = example
            if self.random_flip:
                # Stateless, keyed by (seed, position in the stream): the iterator stays checkpointable
                # (a stateful random op cannot be serialised) and a resumed run flips as a continuous one.
                image = tf.image.stateless_random_flip_left_right(image, tf.stack([tf.cast(seed, tf.int64), index]))
            return image / 127.5 - 1.0, label

        batch = self.global_batch_size
        if input_context is not None:
            batch = input_context.get_per_replica_batch_size(self.global_batch_size)
        dataset = self.source.make(input_context, self.shuffle and not self.cache, seed, self.shuffle_buffer)
        dataset = dataset.map(as_written(self.check_label)).map(as_written(self.prepare),
                                                                num_parallel_calls=tf.data.AUTOTUNE)
        if self.cache:
            dataset = dataset.cache()
            if self.shuffle:
                dataset = dataset.shuffle(10_000, seed=seed)
        if self.repeat:
            dataset = dataset.repeat()
        dataset = dataset.enumerate().map(as_written(augment), num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = self.deterministic or deterministic
        return dataset.with_options(options)


def check_batch_size(global_batch_size, num_replicas):
    """Raises DataError (one line) unless the global batch divides evenly over the replicas."""
    if global_batch_size % num_replicas:
        raise DataError(f"The global batch {global_batch_size} does not divide over {num_replicas} replicas",
                        f"bind build_input.global_batch_size to a multiple of {num_replicas}")
