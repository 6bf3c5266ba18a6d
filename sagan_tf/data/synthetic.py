"""The embedded default dataset: procedural, class-conditional images that need no download.

Each image shows a dark background with a soft colour gradient and a shape drawn twice, once at a
random place in the left half and once mirrored into the right half, with the same colour and
size. The class fixes the shape (disc, square, ring, cross, diamond) and the colour family (warm
or cool), so the 10 default classes are visually distinct; position, size, hue and background vary
per image. The mirrored pair is structure that spans the image: a generator has to make the two
halves agree, which is what self-attention is for.

Images are a pure function of (seed, index): the same seed gives the same dataset, at any
resolution (edges are anti-aliased by evaluating the shapes' signed distances).
"""

import math

import numpy as np
import tensorflow as tf

SHAPES = ("disc", "square", "ring", "cross", "diamond")
# Base colours (RGB in [0, 1]) of the two colour families.
PALETTES = ((0.95, 0.45, 0.15), (0.2, 0.55, 0.95))
MAX_CLASSES = len(SHAPES) * len(PALETTES)


def class_shape_and_palette(label):
    """Returns (shape index, palette index) of a class: shape = label % 5, palette = label // 5."""
    return label % len(SHAPES), label // len(SHAPES)


def pixel_coordinates(resolution, dtype=np.float64):
    """The centres of `resolution` pixels along an axis, in the renderer's [-1, 1] coordinates (numpy),
    computed in `dtype` (float32 gives the renderer's exact values)."""
    return (np.arange(resolution, dtype=dtype) + dtype(0.5)) / dtype(resolution) * dtype(2.0) - dtype(1.0)


def shape_distances(dx, dy, radius, ops):
    """Approximate signed distances (negative inside) of every shape in SHAPES' order, at offsets (dx, dy)
    from the shape's centre. `ops` is the array module (`tf` or `np`): the renderer and the class-identity
    checker (`sagan_tf.eval.shapes`) share this one geometry."""
    r = radius
    centre = ops.sqrt(dx * dx + dy * dy)
    bar = 0.3 * r
    return [
        centre - r,  # disc
        ops.maximum(ops.abs(dx), ops.abs(dy)) - 0.85 * r,  # square
        ops.abs(centre - 0.75 * r) - 0.25 * r,  # ring
        ops.minimum(ops.maximum(ops.abs(dx) - bar, ops.abs(dy) - r),
                    ops.maximum(ops.abs(dy) - bar, ops.abs(dx) - r)),  # cross
        (ops.abs(dx) + ops.abs(dy) - 1.2 * r) / math.sqrt(2.0),  # diamond
    ]


def _signed_distance(shape, dx, dy, radius):
    """The signed distance of the shape with index `shape` (a tensor)."""
    return tf.gather(tf.stack(shape_distances(dx, dy, radius, tf), axis=0), shape)


MAX_SHAPE_SIZE = 1.5


def render(label, seed_pair, resolution, return_parameters=False, shape_size=1.0):
    """Renders one image.

    Args:
        label: int32 scalar class in [0, 10).
        seed_pair: int32 [2] stateless seed of this image.
        resolution: output size (Python int).
        return_parameters: also return a dict of the drawn parameters (for checkers/tests).
        shape_size: scale of the shapes (1: radii 0.18-0.30 of the half-width; up to 1.5); the range of
            positions shrinks with it, so that every shape stays inside its half of the image.

    Returns:
        uint8 [resolution, resolution, 3].
    """
    label = tf.cast(label, tf.int32)
    shape, palette = class_shape_and_palette(label)
    if not 0.0 < shape_size <= MAX_SHAPE_SIZE:
        raise ValueError(f"`shape_size` must be in (0, {MAX_SHAPE_SIZE}]. Received: {shape_size}")
    u = tf.random.stateless_uniform([8], seed=seed_pair)
    # Left half; the mirror copy sits at -cx. With shape_size 1: cx in [-0.7, -0.35], cy in [-0.55, 0.55].
    cx = -(1.0 - 0.3 * shape_size) + (1.0 - 0.65 * shape_size) * u[0]
    cy = -(0.85 - 0.3 * shape_size) + 2 * (0.85 - 0.3 * shape_size) * u[1]
    radius = 0.18 * shape_size + 0.12 * shape_size * u[2]
    base = tf.gather(tf.constant(PALETTES, tf.float32), palette)
    colour = tf.clip_by_value(base + 0.25 * (u[3:6] - 0.5), 0.0, 1.0)
    angle = 2 * math.pi * u[6]
    tint = 0.08 + 0.12 * u[7]

    coords = tf.constant(pixel_coordinates(resolution, np.float32))
    yy, xx = tf.meshgrid(coords, coords, indexing="ij")
    pixel = 2.0 / resolution  # one pixel in these coordinates, for anti-aliasing
    left = _signed_distance(shape, xx - cx, yy - cy, radius)
    right = _signed_distance(shape, xx + cx, yy - cy, radius)
    mask = tf.sigmoid(-tf.minimum(left, right) / (0.5 * pixel))[..., None]
    gradient = 0.5 + 0.5 * (tf.cos(angle) * xx + tf.sin(angle) * yy)
    background = tint * tf.stack([gradient, 0.6 * gradient, 1.0 - gradient], axis=-1)
    image = mask * colour + (1.0 - mask) * background
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
    if return_parameters:
        return image, {"cx": cx, "cy": cy, "radius": radius, "colour": colour, "shape": shape}
    return image


def example(index, seed, num_classes, resolution, shape_size=1.0):
    """(uint8 image, int32 label) of example `index` of the dataset with this seed."""
    index = tf.cast(index, tf.int32)
    label_seed = tf.stack([tf.constant(seed, tf.int32), index])
    label = tf.random.stateless_uniform([], seed=label_seed, maxval=num_classes, dtype=tf.int32)
    image = render(label, tf.stack([tf.constant(seed, tf.int32) + 1, index]), resolution, shape_size=shape_size)
    return image, label
