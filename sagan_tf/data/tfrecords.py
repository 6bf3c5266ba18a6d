"""Writing the project's sharded TFRecords (read back by `tfrecord_source`)."""

import os

import keras
import numpy as np
import tensorflow as tf

from sagan_tf import commands
from sagan_tf.data import files
from sagan_tf.data.files import DataError


def shard_paths(output_dir, prefix, num_shards):
    return [
        os.path.join(output_dir, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)
    ]


def write_tfrecords(examples, output_dir, prefix, num_shards, num_classes, total=None, verbose=True):
    """Writes (encoded image bytes, label) pairs round-robin into `num_shards` TFRecord files.

    Give the examples in a shuffled order (`folder_examples` does; prepared tfds datasets are): the
    shards keep it.

    Files are written under temporary names and renamed when complete, so an interrupted run leaves
    no partial shard that `tfrecord_source` would read. Returns the shard paths.
    """
    if num_shards < 1:
        raise DataError(f"`num_shards` must be positive. Received: {num_shards}")
    os.makedirs(output_dir, exist_ok=True)
    paths = shard_paths(output_dir, prefix, num_shards)
    writers = [tf.io.TFRecordWriter(p + ".incomplete") for p in paths]
    plain = commands.plain_output()
    progress = keras.utils.Progbar(total, unit_name="image") if verbose and not plain else None
    step = max((total or 10_000) // 10, 100)  # plain lines: about a tenth of the images each
    count = 0
    try:
        for count, (encoded, label) in enumerate(examples, start=1):
            writers[(count - 1) % num_shards].write(files.make_example(encoded, label, num_classes))
            if progress is not None and count % 100 == 0:
                progress.update(count)
            elif verbose and plain and count % step == 0:
                print(f"{count}{f'/{total}' if total else ''} images written", flush=True)
    finally:
        for writer in writers:
            writer.close()
    if count == 0:
        for p in paths:
            os.remove(p + ".incomplete")
        raise DataError("No examples to write.")
    for p in paths:
        os.replace(p + ".incomplete", p)
    if progress is not None:
        progress.update(count, finalize=True)
    return paths


def folder_examples(listing, skip=(), seed=0):
    """(file bytes, label) of a `FolderListing` in a seeded random order, leaving out the paths in `skip`.

    A folder lists class by class; written in that order, every shard would be class-sorted and a
    reader's shuffle buffer would see one or two classes at a time.
    """
    skip = set(skip)
    order = np.random.default_rng(seed).permutation(len(listing.paths))
    for i in order:
        path, label = listing.paths[i], listing.labels[i]
        if path not in skip:
            with open(path, "rb") as f:
                yield f.read(), label
