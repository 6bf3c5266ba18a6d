"""A miniature ImageNet in the layout of tensorflow-datasets' manual download: the first few synsets of
tfds's own label list, each a tar of generated JPEGs, packed as `ILSVRC2012_img_train.tar`, and a
validation tar named as ILSVRC2012's (labels come from tfds's own validation label list)."""

import io
import os
import tarfile

import numpy as np
from PIL import Image


def _jpeg(rng, colour, size=(96, 72)):
    pixels = np.clip(np.asarray(colour, np.float64) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_manual_dir(manual_dir, num_synsets=3, per_synset=8, num_val=6, seed=0):
    """Writes ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar into `manual_dir`; returns the synsets."""
    import tensorflow_datasets as tfds  # noqa: PLC0415

    labels_dir = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012")
    with open(os.path.join(labels_dir, "labels.txt")) as f:
        synsets = f.read().split()[:num_synsets]
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, (num_synsets, 3))
    os.makedirs(manual_dir, exist_ok=True)
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as train:
        for synset, colour in zip(synsets, colours):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as per_class:
                for i in range(per_synset):
                    _add(per_class, f"{synset}_{i}.JPEG", _jpeg(rng, colour))
            _add(train, f"{synset}.tar", inner.getvalue())
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as val:
        for i in range(1, num_val + 1):
            _add(val, f"ILSVRC2012_val_{i:08d}.JPEG", _jpeg(rng, colours[i % num_synsets]))
    return synsets
