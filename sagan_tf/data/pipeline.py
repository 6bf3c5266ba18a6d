"""The one tf.data input pipeline of training and evaluation.

source (unbatched uint8 images of any size, int labels) -> channels -> centre crop to a square ->
resize (or pad) to the model resolution -> [optional cache] -> random horizontal flip -> scale to
[-1, 1] -> per-replica batches with drop_remainder -> prefetch. `build_input` returns an input
function for `strategy.distribute_datasets_from_function`: each worker reads its own shard
(`tf.distribute.InputContext`) and batches `global_batch_size / num_replicas` images.
"""

import dataclasses

import gin
import tensorflow as tf

from sagan_tf.data.files import DataError


def to_channels(image, channels):
    """uint8 [H, W, C] with C in {1, 3, 4} -> [H, W, channels] (grey <-> RGB, alpha dropped)."""
    c = image.shape[-1]
    if c == 4:
        image, c = image[..., :3], 3
    if c == channels:
        return image
    if channels == 3:
        return tf.tile(image, [1, 1, 3])
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

    input_fn: object  # (tf.distribute.InputContext or None) -> per-replica batched tf.data.Dataset
    num_classes: int
    resolution: int
    channels: int
    global_batch_size: int
    source_name: str

    def distribute(self, strategy):
        """The per-worker distributed dataset for `strategy`."""
        return strategy.distribute_datasets_from_function(self.input_fn)


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
    seed=0,
):
    """Builds the input pipeline of a `Source` (see `sagan_tf.data.sources`).

    Args:
        source: a `Source` (e.g. `@synthetic_source()` in gin).
        resolution: output image size R.
        global_batch_size: images per step over all replicas; each replica gets an equal share.
        channels: 3 (RGB; grayscale is replicated) or 1 (RGB is converted to grey).
        random_flip: random horizontal flips (the paper's ImageNet augmentation).
        resize_mode: "resize" (centre crop + bilinear) or "pad".
        shuffle, repeat: for training; evaluation uses neither.
        cache: cache the decoded, resized images in memory (small datasets).
        deterministic: fixed order and augmentation for a given seed (slower).
        seed: shuffling and flip seed.

    Returns:
        An `InputSpec`; `input_fn(ctx)` yields (float32 [B, R, R, channels] in [-1, 1], int32 [B]).
    """
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: `channels={channels}`")
    if global_batch_size < 1:
        raise ValueError(f"`global_batch_size` must be positive. Received: {global_batch_size}")
    num_classes = source.num_classes

    def check_label(image, label):
        if num_classes:
            tf.debugging.assert_less(
                label, num_classes, message=f"A label of {source.name} is >= num_classes={num_classes}"
            )
            tf.debugging.assert_non_negative(label, message=f"A label of {source.name} is negative")
        return image, label

    def prepare(image, label):
        image = center_crop_square(to_channels(image, channels))
        image = fit_to_resolution(image, resolution, resize_mode)
        image.set_shape([resolution, resolution, channels])
        return image, tf.cast(label, tf.int32)

    def augment(index, example):
        image, label = example
        if random_flip:
            # Stateless, keyed by (seed, position in the stream): the iterator stays checkpointable
            # (a stateful random op cannot be serialised) and a resumed run flips as a continuous one.
            image = tf.image.stateless_random_flip_left_right(image, tf.stack([tf.cast(seed, tf.int64), index]))
        return image / 127.5 - 1.0, label

    def input_fn(input_context=None):
        batch = global_batch_size
        if input_context is not None:
            batch = input_context.get_per_replica_batch_size(global_batch_size)
        dataset = source.make(input_context, shuffle and not cache, seed)
        dataset = dataset.map(check_label).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            dataset = dataset.cache()
            if shuffle:
                dataset = dataset.shuffle(10_000, seed=seed)
        if repeat:
            dataset = dataset.repeat()
        dataset = dataset.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = deterministic
        return dataset.with_options(options)

    return InputSpec(input_fn, num_classes, resolution, channels, global_batch_size, source.name)


def check_batch_size(global_batch_size, num_replicas):
    """Raises unless the global batch divides evenly over the replicas."""
    if global_batch_size % num_replicas:
        raise DataError(
            f"The global batch {global_batch_size} does not divide over {num_replicas} replicas."
        )
