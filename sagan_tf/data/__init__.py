"""The input pipeline: sources (tfds, image folders, TFRecords, arrays, Fashion-MNIST, synthetic)."""

from sagan_tf.data.files import DataError
from sagan_tf.data.pipeline import InputSpec, build_input
from sagan_tf.data.sources import (
    Source,
    array_source,
    fashion_mnist_source,
    folder_source,
    load_fashion_mnist,
    synthetic_source,
    tfds_source,
    tfrecord_source,
)

__all__ = [
    "DataError",
    "InputSpec",
    "Source",
    "array_source",
    "build_input",
    "fashion_mnist_source",
    "folder_source",
    "load_fashion_mnist",
    "synthetic_source",
    "tfds_source",
    "tfrecord_source",
]
