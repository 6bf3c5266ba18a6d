"""Tests of the input pipeline on small image folders, TFRecords and arrays built here."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf.data import (
    DataError,
    array_source,
    build_input,
    folder_source,
    synthetic_source,
    tfds_source,
    tfrecord_source,
)
from sagan_tf.data import files, synthetic, tfrecords

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _save(path, array, mode=None):
    Image.fromarray(array, mode).save(path)


@pytest.fixture
def image_folder(tmp_path):
    """Two classes: RGB JPEGs and PNGs of different sizes, a grayscale PNG, an RGBA PNG."""
    rng = np.random.RandomState(0)
    root = tmp_path / "images"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
    for i in range(3):
        _save(root / "cats" / f"c{i}.jpg", rng.randint(0, 255, (40, 60, 3), np.uint8))
        _save(root / "dogs" / f"d{i}.png", rng.randint(0, 255, (50, 30, 3), np.uint8))
    _save(root / "cats" / "grey.png", np.full((20, 20), 200, np.uint8), "L")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    _save(root / "dogs" / "alpha.png", rgba, "RGBA")
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root


def _corrupt(folder):
    data = (folder / "cats" / "c0.jpg").read_bytes()
    (folder / "cats" / "truncated.jpg").write_bytes(data[: len(data) // 3])


def _all(spec):
    images, labels = [], []
    for x, y in spec.input_fn():
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_folder_images_labels_ranges_shapes(image_folder):
    source = folder_source(str(image_folder))
    assert source.num_classes == 2
    spec = build_input(source, resolution=16, global_batch_size=2, shuffle=False, repeat=False,
                       random_flip=False, deterministic=True)
    images, labels = _all(spec)
    assert images.shape == (8, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert sorted(labels.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    # The files are listed class by class, sorted: cats c0 c1 c2 grey, dogs alpha d0 d1 d2.
    grey, alpha = images[3], images[4]
    np.testing.assert_allclose(grey, 200 / 127.5 - 1, atol=1e-5)  # grey -> equal RGB channels
    np.testing.assert_allclose(alpha[..., 0], 1.0, atol=1e-5)  # RGBA -> RGB, alpha dropped
    np.testing.assert_allclose(alpha[..., 1:], -1.0, atol=1e-5)


def test_corrupt_file_stops_with_its_name_or_is_skipped_and_counted(image_folder, capsys):
    _corrupt(image_folder)
    with pytest.raises(DataError, match="truncated.jpg"):
        folder_source(str(image_folder))
    source = folder_source(str(image_folder), on_corrupt="skip")
    assert [os.path.basename(p) for p, _ in source.corrupt_files] == ["truncated.jpg"]
    assert "skipped 1 unreadable image file(s) of 9" in capsys.readouterr().out
    spec = build_input(source, resolution=8, global_batch_size=1, shuffle=False, repeat=False)
    assert len(_all(spec)[1]) == 8


def test_folder_errors_name_the_problem(tmp_path, image_folder):
    with pytest.raises(DataError, match="does not exist"):
        folder_source(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        folder_source(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="No .* images"):
        folder_source(str(tmp_path / "empty"), conditional=False)
    (image_folder / "birds").mkdir()
    with pytest.raises(DataError, match="birds' has no images"):
        folder_source(str(image_folder))


def test_flat_folder_is_unconditional(image_folder):
    source = folder_source(str(image_folder / "cats"), conditional=False)
    assert source.num_classes == 0
    spec = build_input(source, resolution=8, global_batch_size=4, shuffle=False, repeat=False)
    assert _all(spec)[0].shape == (4, 8, 8, 3)


def test_centre_crop_then_resize():
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255  # the centre square is white, the side bands black
    spec = build_input(array_source(image[None], np.array([0])), resolution=10, global_batch_size=1,
                       shuffle=False, repeat=False, random_flip=False)
    np.testing.assert_allclose(_all(spec)[0], 1.0, atol=1e-5)


def test_tfrecords_round_trip_and_sharding_by_file(image_folder, tmp_path):
    listing = files.list_image_folder(str(image_folder))
    paths = tfrecords.write_tfrecords(
        tfrecords.folder_examples(listing), str(tmp_path / "rec"), "train", 4, listing.num_classes, verbose=False
    )
    assert len(paths) == 4 and not any(p.endswith(".incomplete") for p in os.listdir(tmp_path / "rec"))
    source = tfrecord_source(str(tmp_path / "rec" / "train-*"))
    assert source.num_classes == 2
    spec = build_input(source, resolution=12, global_batch_size=2, shuffle=False, repeat=False, random_flip=False)
    images, labels = _all(spec)
    assert images.shape == (8, 12, 12, 3) and sorted(labels.tolist()) == [0] * 4 + [1] * 4

    def seen(pipeline_id):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        return {tuple(np.round(x.numpy().ravel()[:32], 4)) for x, _ in source.make(context, False)}

    a, b = seen(0), seen(1)
    assert a and b and not a & b and len(a | b) == 8  # disjoint shards covering everything
    with pytest.raises(DataError, match="No TFRecord files match"):
        tfrecord_source(str(tmp_path / "nothing-*"))


def test_prepare_data_tool_writes_shards(image_folder, tmp_path):
    _corrupt(image_folder)
    cmd = [sys.executable, os.path.join(REPO, "tools", "prepare_data.py"), f"--folder={image_folder}",
           f"--output_dir={tmp_path / 'out'}", "--num_shards=2"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0 and "truncated.jpg" in result.stderr + result.stdout
    result = subprocess.run(cmd + ["--skip_corrupt"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "Skipping 1 unreadable" in result.stdout
    assert len(list((tmp_path / "out").glob("train-*-of-00002.tfrecord"))) == 2


def test_array_labels_out_of_range_and_bad_shapes():
    with pytest.raises(DataError, match="Label 5 of example 1 is outside"):
        array_source(np.zeros((2, 8, 8), np.uint8), np.array([0, 5]), num_classes=3)
    with pytest.raises(DataError, match="uint8"):
        array_source(np.zeros((2, 8, 8), np.float32), np.array([0, 1]))
    with pytest.raises(DataError, match=r"\[N, H, W\]"):
        array_source(np.zeros((8, 8), np.uint8))


def test_array_sharding_is_disjoint_and_batches_are_per_replica():
    images = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    source = array_source(images, np.zeros(8, int), num_classes=1)
    spec = build_input(source, resolution=4, global_batch_size=4, channels=1, shuffle=False,
                       repeat=False, random_flip=False)
    values = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, 2)
        for x, _ in spec.input_fn(context):
            assert x.shape[0] == 2  # global batch 4 over 2 replicas
            values.append(set(np.round((x.numpy()[:, 0, 0, 0] + 1) * 127.5).astype(int)))
    assert set().union(*values) == set(range(8))
    assert not values[0] & values[2]


def test_grayscale_padding_to_32():
    images = np.full((3, 28, 28), 255, np.uint8)
    spec = build_input(array_source(images, np.array([0, 1, 2])), resolution=32, global_batch_size=3,
                       channels=1, resize_mode="pad", shuffle=False, repeat=False, random_flip=False)
    x = _all(spec)[0]
    assert x.shape == (3, 32, 32, 1)
    np.testing.assert_allclose(x[:, 2:30, 2:30], 1.0)
    np.testing.assert_allclose(x[:, :2], -1.0)


def test_synthetic_is_deterministic_and_classes_are_distinct():
    def batch(seed):
        spec = build_input(synthetic_source(num_examples=200, seed=seed), resolution=32, global_batch_size=200,
                           shuffle=False, repeat=False, random_flip=False, deterministic=True)
        return _all(spec)

    (a, ya), (b, yb), (c, _) = batch(0), batch(0), batch(1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(a, c)
    assert set(ya.tolist()) == set(range(10))
    # A nearest-class-mean classifier on colour and shape statistics separates the classes.
    features = np.concatenate([a.mean(axis=(1, 2)), (a > 0).mean(axis=(1, 2))], axis=1)
    means = np.stack([features[ya == k].mean(0) for k in range(10)])
    colour_family = (ya // 5)
    predicted_family = np.argmin(((features[:, None] - means[None]) ** 2).sum(-1), axis=1) // 5
    assert (predicted_family == colour_family).mean() > 0.95
    # The two copies of the shape are mirror images.
    image, params = synthetic.render(3, tf.constant([5, 7]), 64, return_parameters=True)
    mask = image.numpy().max(-1) > 120
    np.testing.assert_array_equal(mask, mask[:, ::-1])


def test_tfds_not_prepared_says_how_to_prepare(tmp_path):
    with pytest.raises(DataError, match="not prepared.*never downloads"):
        tfds_source("mnist", data_dir=str(tmp_path))


@pytest.mark.skipif(not os.path.exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"),
                    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
def test_fashion_mnist_from_the_debian_package():
    from sagan_tf.data import fashion_mnist_source, load_fashion_mnist

    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    source = fashion_mnist_source("test", classes=[5, 9], max_examples=64)
    assert source.num_classes == 2
    spec = build_input(source, resolution=32, channels=3, resize_mode="pad", global_batch_size=64,
                       shuffle=False, repeat=False, random_flip=False)
    x, y = _all(spec)
    assert x.shape == (64, 32, 32, 3) and set(y.tolist()) <= {0, 1}
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey replicated to RGB


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    from sagan_tf.data import load_fashion_mnist

    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist("train", data_dir=str(tmp_path))


def test_tfrecord_label_out_of_range_stops_with_a_message(tmp_path):
    png = files.encode_png(np.zeros((8, 8, 3), np.uint8))
    tfrecords.write_tfrecords([(png, 0), (png, 5)], str(tmp_path), "train", 1, num_classes=2, verbose=False)
    spec = build_input(tfrecord_source(str(tmp_path / "train-*")), resolution=8, global_batch_size=1,
                       shuffle=False, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=2"):
        _all(spec)


@pytest.mark.parametrize("cache", [False, True])
def test_flipping_pipeline_checkpoints_and_resumes_the_same_stream(tmp_path, cache):
    """Random flips and the iterator's position survive a checkpoint: the resumed stream is the same."""
    rng = np.random.RandomState(0)
    images = rng.randint(0, 255, (40, 8, 8, 3)).astype(np.uint8)
    spec = build_input(array_source(images, np.arange(40) % 4), resolution=8, global_batch_size=4,
                       random_flip=True, cache=cache, deterministic=True, seed=3)
    iterator = iter(spec.input_fn())
    first = [next(iterator)[0].numpy() for _ in range(12)]  # past one epoch: flips keep coming
    assert len(first) == 12
    checkpoint = tf.train.Checkpoint(data=iterator)
    path = checkpoint.save(str(tmp_path / "ckpt"))  # a stateful random op here fails to serialise
    expected = [next(iterator)[0].numpy() for _ in range(5)]
    restored = iter(spec.input_fn())
    tf.train.Checkpoint(data=restored).restore(path)
    for a, b in zip(expected, [next(restored)[0].numpy() for _ in range(5)]):
        np.testing.assert_array_equal(a, b)
    # Unshuffled: every image comes back as itself or its mirror image, and both occur.
    plain = build_input(array_source(images, np.arange(40) % 4), resolution=8, global_batch_size=40,
                        random_flip=True, shuffle=False, deterministic=True, seed=3)
    batch = next(iter(plain.input_fn()))[0].numpy()
    scaled = images / 127.5 - 1.0
    same = [np.allclose(b, s, atol=1e-6) for b, s in zip(batch, scaled)]
    mirrored = [np.allclose(b, s[:, ::-1], atol=1e-6) for b, s in zip(batch, scaled)]
    assert all(s or m for s, m in zip(same, mirrored)) and 5 < sum(mirrored) < 35


def test_list_sources_read_a_new_permutation_each_epoch_and_checkpoint_only_their_position(tmp_path):
    """Arrays, folders and the synthetic set: every epoch reads each example once (each worker of two a
    disjoint half), in an order that changes from epoch to epoch; a checkpoint of the input position of the
    50,000 synthetic examples stays small (a shuffle buffer of the list made it 15 MB)."""
    images = np.arange(12, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    spec = build_input(array_source(images, np.arange(12) % 3), resolution=4, global_batch_size=4, channels=1,
                       random_flip=False, deterministic=True, seed=3)
    epochs = []
    for pipeline_id in range(2):
        iterator = iter(spec.input_fn(tf.distribute.InputContext(2, pipeline_id, 2)))
        values = np.concatenate([np.round((next(iterator)[0].numpy()[:, 0, 0, 0] + 1) * 127.5) for _ in range(9)])
        epochs.append([values[i:i + 6].astype(int).tolist() for i in (0, 6, 12)])
    for epoch in range(3):
        assert sorted(epochs[0][epoch] + epochs[1][epoch]) == list(range(12)), epochs
    assert len({tuple(e) for e in epochs[0]}) == 3 and epochs[0][0] != sorted(epochs[0][0])

    synthetic_spec = build_input(synthetic_source(num_examples=50_000), resolution=32, global_batch_size=4, seed=1)
    iterator = iter(synthetic_spec.input_fn())
    next(iterator)
    path = tf.train.Checkpoint(data=iterator).save(str(tmp_path / "ckpt"))
    assert os.path.getsize(path + ".data-00000-of-00001") < 1_000_000


def _distinct_labels_per_batch(spec, batches):
    iterator = iter(spec.input_fn())
    return float(np.mean([len(set(next(iterator)[1].numpy().tolist())) for _ in range(batches)]))


def files_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _sorted_folder(root, classes=10, per_class=30):
    """A class-sorted folder of tiny PNGs (every image's colour encodes its class)."""
    for c in range(classes):
        (root / f"class_{c:02d}").mkdir(parents=True)
        for i in range(per_class):
            _save(root / f"class_{c:02d}" / f"{i:03d}.png", np.full((6, 6, 3), 20 * c, np.uint8))
    return root


def test_records_of_a_class_sorted_folder_give_mixed_batches(tmp_path):
    """prepare_data writes shards in a shuffled order, and the reader shuffles examples, not only files:
    a batch of 20 from 10 classes holds about 8.8 distinct labels when shuffled (about 2 class-sorted)."""
    listing = files.list_image_folder(str(_sorted_folder(tmp_path / "images")), True)
    tfrecords.write_tfrecords(tfrecords.folder_examples(listing, seed=0), str(tmp_path / "shuffled"), "train", 4,
                              listing.num_classes, verbose=False)
    labels = [int(files.parse_example(r)[1]) for r in tf.data.TFRecordDataset(str(tmp_path / "shuffled" / "train-00000-of-00004.tfrecord")).take(20)]
    assert len(set(labels)) >= 6, labels  # the shard itself mixes classes
    spec = build_input(tfrecord_source(str(tmp_path / "shuffled" / "train-*")), resolution=6, global_batch_size=20,
                       random_flip=False, seed=1)
    assert _distinct_labels_per_batch(spec, 15) > 7.0
    # Class-sorted shards (as the old writer made them): the example buffer alone still mixes batches.
    sorted_examples = ((files_bytes(p), y) for p, y in zip(listing.paths, listing.labels))
    tfrecords.write_tfrecords(sorted_examples, str(tmp_path / "sorted"), "train", 1, listing.num_classes, verbose=False)
    spec = build_input(tfrecord_source(str(tmp_path / "sorted" / "train-*")), resolution=6, global_batch_size=20,
                       random_flip=False, seed=1, shuffle_buffer=1000)
    assert _distinct_labels_per_batch(spec, 15) > 7.0


def test_run_seed_reaches_the_data_order_unless_build_input_fixes_it():
    images = np.arange(64, dtype=np.uint8).reshape(64, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    spec = build_input(array_source(images, np.arange(64) % 4), resolution=4, global_batch_size=8, channels=1,
                       random_flip=False, deterministic=True)
    first = lambda s, seed: next(iter(s.input_fn(None, seed)))[0].numpy().ravel()  # noqa: E731
    np.testing.assert_array_equal(first(spec, 3), first(spec, 3))
    assert not np.array_equal(first(spec, 3), first(spec, 4))
    fixed = build_input(array_source(images, np.arange(64) % 4), resolution=4, global_batch_size=8, channels=1,
                        random_flip=False, deterministic=True, seed=5)
    np.testing.assert_array_equal(first(fixed, 3), first(fixed, 4))
    # TensorFlow's global seed (training sets it to the run seed) does not change the order.
    tf.random.set_seed(99)
    np.testing.assert_array_equal(first(fixed, 3), first(fixed, 4))


def test_evaluation_images_are_a_fixed_seed_sample_of_the_whole_dataset():
    """Real statistics read the first N images of `evaluation_input`: from a class-sorted dataset those must
    still span the classes, and be the same images every time."""
    from sagan_tf.eval.periodic import evaluation_input

    images = np.repeat(np.arange(10, dtype=np.uint8) * 20, 100).reshape(1000, 1, 1, 1).repeat(8, 1).repeat(8, 2)
    labels = np.repeat(np.arange(10), 100)
    first = lambda: next(iter(evaluation_input(50, source=array_source(images, labels)).input_fn(None)))  # noqa: E731
    x1, y1 = first()
    tf.random.set_seed(7)  # as in a training process
    x2, _ = first()
    assert len(set(y1.numpy().tolist())) >= 8
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())
