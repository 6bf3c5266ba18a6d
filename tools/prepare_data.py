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

from absl import app, flags

from sagan_tf.data import files, sources, tfrecords

FLAGS = flags.FLAGS
flags.DEFINE_string("folder", None, "Image folder (class sub-folders, or flat with --noconditional).")
flags.DEFINE_boolean("conditional", True, "Folder has one sub-folder per class.")
flags.DEFINE_string("tfds", None, "Name of a prepared tensorflow-datasets dataset.")
flags.DEFINE_string("split", "train", "tfds split; also the shard file prefix.")
flags.DEFINE_string("data_dir", None, "tfds data_dir.")
flags.DEFINE_string("manual_dir", None, "With --tfds: build the dataset from the archives in this folder first.")
flags.DEFINE_string("output_dir", None, "Where to write the shards.")
flags.DEFINE_integer("num_shards", 8, "Number of TFRecord files.")
flags.DEFINE_boolean("skip_corrupt", False, "Leave unreadable images out instead of stopping.")
flags.DEFINE_integer("seed", 0, "Seed of the order in which folder images are written.")


def main(argv):
    del argv
    if bool(FLAGS.folder) == bool(FLAGS.tfds):
        raise app.UsageError("Give exactly one of --folder and --tfds.", exitcode=2)
    if FLAGS.manual_dir and not FLAGS.tfds:
        raise app.UsageError("--manual_dir goes with --tfds.", exitcode=2)
    if not FLAGS.output_dir and not FLAGS.manual_dir:
        raise app.UsageError("Give --output_dir (records), or --tfds with --manual_dir (prepare the tfds dataset).", exitcode=2)
    if FLAGS.manual_dir:
        try:
            info = sources.prepare_tfds(FLAGS.tfds, FLAGS.manual_dir, FLAGS.data_dir)
        except sources.DataError as error:
            raise app.UsageError(str(error)) from None
        print(f"Prepared {FLAGS.tfds} in {info.data_dir}: "
              + ", ".join(f"{name} {split.num_examples}" for name, split in info.splits.items()))
        if not FLAGS.output_dir:
            return
    if FLAGS.folder:
        listing = files.list_image_folder(FLAGS.folder, FLAGS.conditional)
        corrupt = files.find_corrupt(listing.paths)
        if corrupt and not FLAGS.skip_corrupt:
            names = "\n  ".join(f"{p}: {r}" for p, r in corrupt[:20])
            raise app.UsageError(f"{len(corrupt)} unreadable image(s):\n  {names}\n(--skip_corrupt leaves them out)", exitcode=2)
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
    app.run(main)
