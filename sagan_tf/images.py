"""The one conversion between the networks' [-1, 1] images and 8-bit pixels.

Data enter as p / 127.5 - 1 for 8-bit pixels p; every way out (sample grids, attention figures,
serving, and the evaluator's view of generated images) rounds back to the nearest p.
"""

import numpy as np
import tensorflow as tf


def to_uint8(images, rgb=False):
    """float images in [-1, 1] -> uint8 [0, 255], rounded to the nearest level (a tf.Tensor; works in graphs).

    With `rgb`, single-channel images are repeated to 3 channels.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        scaled = (tf.cast(images, tf.float32) + 1.0) * 127.5
        images = tf.cast(tf.round(tf.clip_by_value(scaled, 0.0, 255.0)), tf.uint8)
    if rgb and images.shape[-1] == 1:
        images = tf.repeat(images, 3, axis=-1)
    return images


def quantize(images):
    """float images in [-1, 1] -> the nearest 8-bit image, still in [-1, 1] (p / 127.5 - 1)."""
    return tf.cast(to_uint8(images), tf.float32) / 127.5 - 1.0


def image_grid(images, rows):
    """float [N, H, W, C] in [-1, 1] (or uint8) -> uint8 [rows*H, cols*W, 3], filled row by row."""
    images = to_uint8(images, rgb=True).numpy()
    n, h, w, c = images.shape
    cols = int(np.ceil(n / rows))
    padded = np.zeros((rows * cols, h, w, c), np.uint8)
    padded[:n] = images
    return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)
