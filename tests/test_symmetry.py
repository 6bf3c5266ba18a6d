"""The mirrored-pair checker of the long-range benchmark."""

import numpy as np
import pytest

from sagan_tf.data import synthetic
from sagan_tf.eval import symmetry


@pytest.fixture(scope="module")
def real_images():
    return np.stack([synthetic.example(i, 5, 10, 32)[0].numpy() for i in range(200)])


def test_real_images_score_near_one_and_swapped_halves_near_chance(real_images):
    assert symmetry.consistency_score(real_images) >= 0.97
    assert symmetry.consistency_score(symmetry.swap_halves(real_images)) <= 0.05
    as_floats = real_images.astype(np.float32) / 127.5 - 1.0  # generator outputs score the same
    assert symmetry.consistency_score(as_floats) == symmetry.consistency_score(real_images)


def test_each_failure_mode_is_caught(real_images):
    image = real_images[:1].copy()
    assert symmetry.pair_consistency(image)[0][0]
    no_right = image.copy()
    no_right[:, :, 16:] = 10  # the right shape erased
    assert not symmetry.pair_consistency(no_right)[0][0]
    flat = np.zeros((1, 32, 32, 3), np.float32)  # an untrained generator's flat mid-grey: no shape anywhere
    assert not symmetry.pair_consistency(flat)[0][0]
    recoloured = image.copy()
    recoloured[:, :, 16:] = np.where(recoloured[:, :, 16:].max(-1, keepdims=True) > 128,
                                     recoloured[:, :, 16:, ::-1], recoloured[:, :, 16:])  # RGB -> BGR on the shape
    consistent, iou, colour = symmetry.pair_consistency(recoloured)
    assert iou[0] > 0.6 and colour[0] > 0.1 and not consistent[0]
    shifted = image.copy()
    shifted[:, :, 16:] = np.roll(image[:, :, 16:], 6, axis=1)  # the right shape moved down
    assert not symmetry.pair_consistency(shifted)[0][0]
    with pytest.raises(ValueError, match="even R"):
        symmetry.pair_consistency(np.zeros((1, 31, 31, 3), np.uint8))


def test_class_identity_knows_the_real_classes_and_not_shuffled_labels():
    from sagan_tf.eval import shapes

    images, labels = [], []
    for index in range(300):
        image, label = synthetic.example(index, 0, 10, 32)
        images.append(image.numpy())
        labels.append(int(label))
    images, labels = np.stack(images), np.array(labels)
    real = shapes.class_identity(images, labels)
    assert real["score"] >= 0.95 and min(real["per_class"]) >= 0.8 and real["colour"] == 1.0
    shuffled = shapes.class_identity(images, np.random.RandomState(0).permutation(labels))
    assert shuffled["score"] < 0.2
    # The nearest confusions: a disc is no ring (its hole is missing) and a square no disc.
    discs, squares = labels % 5 == 0, labels % 5 == 1
    assert shapes.class_identity(images[discs], labels[discs] + 2)["score"] < 0.1
    assert shapes.class_identity(images[squares], labels[squares] - 1)["score"] < 0.1


def test_larger_shapes_stay_in_their_halves_and_keep_their_classes():
    from sagan_tf.data import DataError
    from sagan_tf.data.sources import synthetic_source
    from sagan_tf.eval import shapes

    images, labels = zip(*[(image.numpy(), int(label)) for image, label in
                           (synthetic.example(i, 0, 10, 32, 1.4) for i in range(100))])
    images, labels = np.stack(images), np.array(labels)
    assert symmetry.consistency_score(images) >= 0.95  # both copies whole, mirrored
    assert shapes.class_identity(images, labels)["score"] >= 0.95
    small = np.stack([synthetic.example(i, 0, 10, 32)[0].numpy() for i in range(100)])
    assert (images.max(-1) > 115).sum() > 1.5 * (small.max(-1) > 115).sum()  # about 1.4^2 times the area
    assert synthetic_source(shape_size=1.4).name.endswith("-size1.4") and synthetic_source().name.endswith("seed0")
    with pytest.raises(DataError, match="shape_size"):
        synthetic_source(shape_size=2.0)
