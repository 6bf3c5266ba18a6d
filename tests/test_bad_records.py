"""Bad records in TFRecord shards and tfds shards (a JPEG that does not decode, a truncated file) get the image
folder's `on_corrupt` behaviour: a one-line `DataError` naming the file and the record, or skipped and counted."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import imagenet_mini

from sagan_tf import commands
from sagan_tf.data import DataError, build_input, files, sources, tfrecord_source, tfrecords

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _jpeg(value):
    return tf.io.encode_jpeg(np.full((8, 8, 3), value, np.uint8)).numpy()


def _rewrite(path, image_key, bad_index=None, truncate=False):
    """Rewrites a TFRecord file of Examples with record `bad_index`'s image cut to its first 40 bytes, or with
    its last record cut in half (`truncate`)."""
    records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    if bad_index is not None:
        example = tf.train.Example.FromString(records[bad_index])
        image = example.features.feature[image_key].bytes_list
        image.value[0] = image.value[0][:40]
        records[bad_index] = example.SerializeToString()
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    if truncate:
        size, last = os.path.getsize(path), len(records[-1])
        with open(path, "r+b") as f:
            f.truncate(size - last // 2)
    return len(records)


def _count(source):
    spec = build_input(source, resolution=8, global_batch_size=1, shuffle=False, repeat=False, random_flip=False)
    return sum(1 for _ in spec.input_fn())


@pytest.fixture
def shards(tmp_path):
    """Two shards of 5 JPEG records each: record 2 of shard 0 does not decode, shard 1 is truncated in its last."""
    paths = tfrecords.write_tfrecords([(_jpeg(20 * i), i % 2) for i in range(10)], str(tmp_path), "train", 2,
                                      num_classes=2, verbose=False)
    _rewrite(paths[0], "image/encoded", bad_index=2)
    _rewrite(paths[1], "image/encoded", truncate=True)
    return paths


def test_corrupt_jpeg_and_truncated_file_are_found_with_file_and_record(shards):
    bad = files.find_corrupt_records(shards)
    assert [(b.path, b.index, b.truncated) for b in bad] == [(shards[0], 2, False), (shards[1], 4, True)]
    with pytest.raises(DataError) as error:
        tfrecord_source(os.path.join(os.path.dirname(shards[0]), "train-*"))
    line = commands.error_line("train", error.value)  # what a command prints
    assert isinstance(error.value, commands.UserError) and "\n" not in line
    assert "2 unreadable record(s)" in line and f"first: {shards[0]} record 2 " in line


def test_skip_leaves_bad_records_out_counts_them_and_keeps_a_truncated_files_head(shards, capsys):
    source = tfrecord_source(os.path.join(os.path.dirname(shards[0]), "train-*"), on_corrupt="skip")
    assert "tfrecord_source: skipping 2 unreadable record(s)" in capsys.readouterr().out
    assert _count(source) == 8  # 10 written, minus the corrupt JPEG and the truncated last record
    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.DataLossError)):  # what the check prevents
        _count(tfrecord_source(os.path.join(os.path.dirname(shards[0]), "train-*"), validate=False))


def test_train_command_stops_with_one_line_naming_the_record(shards, tmp_path):
    cmd = [sys.executable, "-m", "sagan_tf.train", "--gin_file=synthetic.gin", f"--model_dir={tmp_path / 'run'}",
           "--gin_param=build_input.source = @tfrecord_source()",
           f"--gin_param=tfrecord_source.file_pattern = '{os.path.dirname(shards[0])}/train-*'"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith("sagan_tf.train: error: 2 unreadable record(s)") and f"{shards[0]} record 2" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def tfds_data(tmp_path_factory):
    """imagenet2012 built by tfds's own builder from a miniature manual_dir (3 classes x 4 train images)."""
    root = tmp_path_factory.mktemp("tfds")
    imagenet_mini.make_manual_dir(str(root / "manual"), num_synsets=3, per_synset=4, num_val=3)
    info = sources.prepare_tfds("imagenet2012", str(root / "manual"), str(root / "data"))
    return str(root / "data"), [os.fspath(p) for p in info.splits["train"].filepaths]


def test_tfds_shard_with_a_corrupt_jpeg_then_a_truncated_tail(tfds_data):
    data_dir, paths = tfds_data
    total = sum(_rewrite(p, "image") for p in paths)  # unchanged: the clean dataset reads in full
    assert _count(sources.tfds_source("imagenet2012", data_dir=data_dir)) == total == 12
    _rewrite(paths[0], "image", bad_index=1)
    with pytest.raises(DataError, match=f"first: {paths[0]} record 1 "):
        sources.tfds_source("imagenet2012", data_dir=data_dir)
    assert _count(sources.tfds_source("imagenet2012", data_dir=data_dir, on_corrupt="skip")) == total - 1
    _rewrite(paths[0], "image", truncate=True)  # a truncated tfds file stops even with "skip": never a hang
    with pytest.raises(DataError, match=f"{paths[0]} is truncated at record {total - 1}"):
        sources.tfds_source("imagenet2012", data_dir=data_dir, on_corrupt="skip")
