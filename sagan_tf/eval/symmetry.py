"""An exact, non-learned checker of the long-range structure of the synthetic dataset.

Every synthetic image (`sagan_tf.data.synthetic`) holds one shape in the left half and its mirror
image, same shape, size and colour, in the right half, on a dark background whose brightness stays
below 0.2. A generator that gets this right must make two regions half an image apart agree.
The checker segments the bright foreground (any channel above `threshold`) and calls an image
*consistent* when both halves hold a shape, the left mask overlaps the mirrored right mask with
IoU >= `min_iou`, and the mean colours of the two shapes differ by at most `max_colour` per channel.
The score of a set of images is the fraction that is consistent: near 1 for real images, near the
chance level for images whose right halves are swapped between images (`swap_halves`).
"""

import numpy as np


def _unit(images):
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    return (images.astype(np.float64) + 1.0) / 2.0  # [-1, 1] floats


def pair_consistency(images, threshold=0.5, min_iou=0.5, max_colour=0.1, min_fraction=0.005, max_fraction=0.5):
    """Per image: (consistent bool [B], IoU [B], colour difference [B]) of uint8 or [-1, 1] RGB [B, R, R, 3]."""
    x = _unit(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2] or x.shape[1] % 2:
        raise ValueError(f"Expected square RGB images [B, R, R, 3] with even R. Received shape {x.shape}.")
    half = x.shape[2] // 2
    left, right = x[:, :, :half], x[:, :, half:][:, :, ::-1]  # the right half mirrored onto the left
    mask_l, mask_r = left.max(-1) > threshold, right.max(-1) > threshold
    inter = (mask_l & mask_r).sum((1, 2))
    union = (mask_l | mask_r).sum((1, 2))
    iou = inter / np.maximum(union, 1)
    area = half * x.shape[1]
    # A shape covers between min_fraction and max_fraction of its half (the largest, a disc of radius 0.45 at
    # shape_size 1.5, about a third): an empty half holds none, and neither does a half that is bright all over
    # (an untrained generator's flat grey), however well the two halves then agree.
    counts_l, counts_r = mask_l.sum((1, 2)), mask_r.sum((1, 2))
    present = ((counts_l >= min_fraction * area) & (counts_r >= min_fraction * area)
               & (counts_l <= max_fraction * area) & (counts_r <= max_fraction * area))

    def mean_colour(half_image, mask):
        weights = mask[..., None].astype(np.float64)
        return (half_image * weights).sum((1, 2)) / np.maximum(weights.sum((1, 2)), 1.0)

    colour = np.abs(mean_colour(left, mask_l) - mean_colour(right, mask_r)).max(-1)
    consistent = present & (iou >= min_iou) & (colour <= max_colour)
    return consistent, iou, colour


def consistency_score(images, **kwargs):
    """Fraction of `images` whose two halves agree (see `pair_consistency`)."""
    return float(np.mean(pair_consistency(images, **kwargs)[0]))


def swap_halves(images, seed=0):
    """Images whose right halves come from other images (a derangement): the chance baseline."""
    images = np.asarray(images)
    n = len(images)
    order = (np.arange(n) + 1 + np.random.RandomState(seed).randint(0, max(n - 1, 1))) % n
    out = images.copy()
    half = images.shape[2] // 2
    out[:, :, half:] = images[order, :, half:]
    return out
