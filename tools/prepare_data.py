"""Converts an image folder or a prepared tfds split into sharded TFRecords for `tfrecord_source`.

  python tools/prepare_data.py --folder=/data/my_images --output_dir=/data/records --num_shards=16
  python tools/prepare_data.py --tfds=cifar10 --split=train --data_dir=~/tensorflow_datasets \
      --output_dir=/data/cifar10_records

Folder images are validated first: unreadable files stop the conversion with their names, or are
left out and counted with --skip_corrupt. Then train with
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
flags.DEFINE_string("output_dir", None, "Where to write the shards.")
flags.DEFINE_integer("num_shards", 8, "Number of TFRecord files.")
flags.DEFINE_boolean("skip_corrupt", False, "Leave unreadable images out instead of stopping.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    if bool(FLAGS.folder) == bool(FLAGS.tfds):
        raise app.UsageError("Give exactly one of --folder and --tfds.")
    if FLAGS.folder:
        listing = files.list_image_folder(FLAGS.folder, FLAGS.conditional)
        corrupt = files.find_corrupt(listing.paths)
        if corrupt and not FLAGS.skip_corrupt:
            names = "\n  ".join(f"{p}: {r}" for p, r in corrupt[:20])
            raise app.UsageError(f"{len(corrupt)} unreadable image(s):\n  {names}\n(--skip_corrupt leaves them out)")
        examples = tfrecords.folder_examples(listing, skip=[p for p, _ in corrupt])
        total, num_classes = len(listing.paths) - len(corrupt), listing.num_classes
        if corrupt:
            print(f"Skipping {len(corrupt)} unreadable image(s).")
    else:
        source = sources.tfds_source(FLAGS.tfds, FLAGS.split, FLAGS.data_dir)
        examples = tfrecords.dataset_examples(source.make(None, False))
        total, num_classes = None, source.num_classes
    paths = tfrecords.write_tfrecords(
        examples, FLAGS.output_dir, FLAGS.split, FLAGS.num_shards, num_classes, total=total
    )
    print(f"Wrote {len(paths)} shards to {FLAGS.output_dir} ({num_classes} classes).")


if __name__ == "__main__":
    app.run(main)
