"""An exact, non-learned checker of class identity for the synthetic dataset: does an image of class k
show class k's shape in class k's colour family?

Each synthetic class fixes a shape (disc, square, ring, cross, diamond: label % 5) and a colour family
(warm or cool: label // 5); `sagan_tf.data.synthetic` draws it in the left half and mirrored in the
right. The checker segments the left half's bright foreground, places each of the five shapes at the
foreground's centroid over a range of sizes, and takes the shape whose mask matches best (IoU); the
colour family is the palette nearest to the foreground's mean colour. An image *shows its class* when
both agree with its label and the best IoU is at least `min_iou`. Real images score near 1; images
whose labels are shuffled score near chance (0.1 for ten classes).
"""

import numpy as np

from sagan_tf.data.synthetic import MAX_CLASSES, PALETTES, SHAPES, pixel_coordinates, shape_distances


def _unit(images):
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    return (images.astype(np.float64) + 1.0) / 2.0  # [-1, 1] floats


def _shape_masks(resolution, cx, cy, radii):
    """[5, len(radii), R, R/2] boolean masks of every shape at (cx, cy) in the left half's pixel grid
    (coordinates in [-1, 1] as the renderer's)."""
    coords = pixel_coordinates(resolution)
    yy, xx = np.meshgrid(coords, coords[: resolution // 2], indexing="ij")
    r = np.asarray(radii, np.float64)[:, None, None]
    return np.stack(shape_distances(xx[None] - cx, yy[None] - cy, r, np)) < 0


def classify(images, threshold=0.45, radii=np.arange(0.12, 0.50, 0.01)):
    """Per image: (shape index [B], palette index [B], best IoU [B]); shape -1 where the left half holds
    no foreground. `images`: uint8 or [-1, 1] RGB [B, R, R, 3]."""
    x = _unit(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2] or x.shape[1] % 2:
        raise ValueError(f"Expected square RGB images [B, R, R, 3] with even R. Received shape {x.shape}.")
    resolution = x.shape[1]
    left = x[:, :, : resolution // 2]
    masks = left.max(-1) > threshold
    coords = pixel_coordinates(resolution)
    palettes = np.asarray(PALETTES)
    shapes, families, ious = np.full(len(x), -1), np.full(len(x), -1), np.zeros(len(x))
    for i, mask in enumerate(masks):
        if mask.sum() < 2:
            continue
        rows, cols = np.nonzero(mask)
        step = 1.0 / resolution  # half a pixel: the centroid of a pixelated shape is off by about that
        iou = np.zeros((len(SHAPES), len(radii)))
        for oy in (-step, 0.0, step):
            for ox in (-step, 0.0, step):
                templates = _shape_masks(resolution, coords[cols].mean() + ox, coords[rows].mean() + oy, radii)
                inter = (templates & mask).sum((-2, -1))
                union = (templates | mask).sum((-2, -1))
                iou = np.maximum(iou, inter / np.maximum(union, 1))  # [5, radii]
        shapes[i] = int(np.argmax(iou.max(1)))
        ious[i] = iou.max()
        colour = left[i][mask].mean(0)
        families[i] = int(np.argmin(((palettes - colour) ** 2).sum(1)))
    return shapes, families, ious


def class_identity(images, labels, num_classes=MAX_CLASSES, min_iou=0.5):
    """{"score": fraction of images showing their class, "per_class": [fraction per class],
    "shape": fraction with the right shape, "colour": fraction with the right colour family}."""
    labels = np.asarray(labels).reshape(-1)
    shapes, families, ious = classify(images)
    right_shape = shapes == labels % len(SHAPES)
    right_colour = families == labels // len(SHAPES)
    shows = right_shape & right_colour & (ious >= min_iou)
    per_class = [float(shows[labels == k].mean()) if np.any(labels == k) else float("nan") for k in range(num_classes)]
    return {"score": float(shows.mean()), "per_class": per_class, "shape": float(right_shape.mean()),
            "colour": float(right_colour.mean()), "count": int(len(labels))}
