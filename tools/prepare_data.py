"""Prepares data for training: image folders and tensorflow-datasets datasets to sharded TFRecords, and
tfds datasets from their manually downloaded archives, offline.

  python tools/prepare_data.py --folder=/data/my_images --output_dir=/data/records --num_shards=16
  python tools/prepare_data.py --tfds=imagenet2012 --manual_dir=/data/imagenet --data_dir=~/tensorflow_datasets
  python tools/prepare_data.py --tfds=imagenet2012 --data_dir=~/tensorflow_datasets --output_dir=/data/in_records

With --manual_dir, the tfds dataset is first built by tfds's own builder from the archives there
(imagenet2012: ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar; nothing is downloaded). This is
the way to prepare it with the pinned stack: the `tfds build` command of tensorflow-datasets 4.9.10
imports apache_beam at start-up and fails without it. Without --output_dir it stops there (train with
`tfds_source`); with it, the split is also written as TFRecords (the images' JPEG bytes, unchanged).

Folder images are validated first: unreadable files stop the conversion with their names, or are
left out and counted with --skip_corrupt. Examples are written in a random order (--seed), so that
every shard mixes the classes (tfds shuffles its prepared datasets already). Then train with
`build_input.source = @tfrecord_source()` and `tfrecord_source.file_pattern = '/data/records/train-*'`.
"""

import os

from absl import flags

from lab import checks
from sagan_tf import commands, logs  # (no TensorFlow)

FLAGS = flags.FLAGS
flags.DEFINE_string("folder", None, "Image folder (class sub-folders, or flat with --noconditional).")
flags.DEFINE_boolean("conditional", True, "Folder has one sub-folder per class.")
flags.DEFINE_string("tfds", None, "Name of a prepared tensorflow-datasets dataset.")
flags.DEFINE_string("split", "train", "tfds split; also the shard file prefix.")
flags.DEFINE_string("data_dir", None, "tfds data_dir.")
flags.DEFINE_string("manual_dir", None, "With --tfds: build the dataset from the archives in this folder first.")
flags.DEFINE_string("output_dir", None, "Where to write the shards.")
flags.DEFINE_integer("num_shards", 8, "Number of TFRecord files.", lower_bound=1)
flags.DEFINE_boolean("skip_corrupt", False, "Leave unreadable images out instead of stopping.")
flags.DEFINE_integer("seed", 0, "Seed of the order in which folder images are written.")


def check_flags():
    """The checks that need no TensorFlow: which source, and that its folders exist."""
    if bool(FLAGS.folder) == bool(FLAGS.tfds):
        raise commands.UserError("give exactly one of --folder and --tfds",
                                 "--folder=IMAGES for an image folder, --tfds=NAME for a tensorflow-datasets dataset")
    if FLAGS.manual_dir and not FLAGS.tfds:
        raise commands.UserError("--manual_dir goes with --tfds", "pass --tfds=NAME, or leave --manual_dir out")
    if not FLAGS.output_dir and not FLAGS.manual_dir:
        raise commands.UserError("--output_dir is required",
                                 "pass --output_dir=DIR for the records, or --tfds with --manual_dir to prepare it")
    if FLAGS.output_dir:
        checks.output_folder("output_dir", FLAGS.output_dir, "pass a folder for the shards")
    if FLAGS.manual_dir:
        checks.folder("manual_dir", FLAGS.manual_dir, "pass the folder that holds the dataset's archives")
    if FLAGS.folder:
        checks.folder("folder", FLAGS.folder, "pass a folder of images")
        if FLAGS.conditional and not any(entry.is_dir() for entry in os.scandir(FLAGS.folder)):
            raise commands.UserError(f"--folder {FLAGS.folder} has no class sub-folders",
                                     "put each class's images in its own sub-folder, or pass --noconditional "
                                     "for a flat folder")


def main(argv):
    del argv
    check_flags()
    logs.quiet_libraries()
    from sagan_tf.data import files, sources, tfrecords  # noqa: PLC0415  (TensorFlow starts here)

    if FLAGS.manual_dir:
        info = sources.prepare_tfds(FLAGS.tfds, FLAGS.manual_dir, FLAGS.data_dir)
        print(f"Prepared {FLAGS.tfds} in {info.data_dir}: "
              + ", ".join(f"{name} {split.num_examples}" for name, split in info.splits.items()))
        if not FLAGS.output_dir:
            return
    if FLAGS.folder:
        listing = files.list_image_folder(FLAGS.folder, FLAGS.conditional)
        corrupt = files.find_corrupt(listing.paths)
        if corrupt and not FLAGS.skip_corrupt:
            names = "; ".join(f"{p}: {r}" for p, r in corrupt[:3]) + ("; ..." if len(corrupt) > 3 else "")
            raise commands.UserError(f"{len(corrupt)} unreadable image(s) in --folder: {names}",
                                     "--skip_corrupt leaves them out")
        examples = tfrecords.folder_examples(listing, skip=[p for p, _ in corrupt], seed=FLAGS.seed)
        total, num_classes = len(listing.paths) - len(corrupt), listing.num_classes
        if corrupt:
            print(f"Skipping {len(corrupt)} unreadable image(s).")
    else:
        source = sources.tfds_source(FLAGS.tfds, FLAGS.split, FLAGS.data_dir)
        examples = source.encoded_examples()
        total, num_classes = None, source.num_classes
    paths = tfrecords.write_tfrecords(
        examples, FLAGS.output_dir, FLAGS.split, FLAGS.num_shards, num_classes, total=total
    )
    print(f"Wrote {len(paths)} shards to {FLAGS.output_dir} ({num_classes} classes).")


if __name__ == "__main__":
    commands.run("tools/prepare_data.py", main, __doc__)
