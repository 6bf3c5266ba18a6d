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


def labelled_grid(images, row_names, min_tile=96):
    """`image_grid` with one row per name (images filled row by row), every tile enlarged (nearest
    neighbour, an integer factor) to at least `min_tile` pixels so that 32x32 samples can be judged, and
    each row's name written in a white margin on its left (no margin when every name is empty)."""
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

    images = to_uint8(images, rgb=True).numpy()
    grid = image_grid(images, rows=len(row_names))
    tile = images.shape[1]
    scale = max(1, -(-min_tile // tile))
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    if not any(row_names):
        return grid
    font = ImageFont.load_default()
    width = max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(str(n), font=font)) for n in row_names) + 12
    canvas = Image.new("RGB", (width + grid.shape[1], grid.shape[0]), "white")
    canvas.paste(Image.fromarray(grid), (width, 0))
    draw = ImageDraw.Draw(canvas)
    for row, name in enumerate(row_names):
        draw.text((6, row * tile * scale + tile * scale // 2 - 6), str(name), fill="black", font=font)
    return np.asarray(canvas)
