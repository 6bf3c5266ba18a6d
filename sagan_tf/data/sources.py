"""Data sources: each yields unbatched (uint8 image [H, W, C], int32 label) for one input pipeline.

A source is selected by gin (`build_input.source = @folder_source()`); it knows how to shard itself
across input pipelines (`tf.distribute.InputContext`): file-backed sources shard by file, in-memory
sources by element. Pre-processing and batching live in `sagan_tf.data.pipeline`.
"""

import dataclasses
import gzip
import os
from typing import Callable

import gin
import numpy as np
import tensorflow as tf

from sagan_tf.data import files, synthetic
from sagan_tf.data.files import DataError


def as_written(fn):
    """`fn` for `tf.data` to trace without autograph, for functions whose control flow is static (converting
    the synthetic pipeline's functions costs about a second of every run's start)."""
    return tf.autograph.experimental.do_not_convert(fn)


@dataclasses.dataclass
class Source:
    """A data source.

    Attributes:
        name: a short description (used in cache keys and messages).
        num_classes: number of classes (0 = unlabelled / unconditional).
        make: `make(input_context, shuffle, seed, buffer) -> tf.data.Dataset` of unbatched
            (uint8 [H, W, C], int32 label), already sharded for `input_context` (may be None). With
            `shuffle`, examples come in a seeded random order: sources held as a list shuffle all of
            it; record sources shuffle files and then encoded examples in a buffer of `buffer`.
        corrupt_files: files found unreadable and skipped (for folder sources).
    """

    name: str
    num_classes: int
    make: Callable
    corrupt_files: tuple = ()
    encoded_examples: Callable = None  # () -> iterator of (encoded image bytes, label), where kept encoded


def _shard(dataset, input_context):
    if input_context is None or input_context.num_input_pipelines == 1:
        return dataset
    return dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)


def _example_order(count, input_context, shuffle, seed):
    """The indices of the examples this input pipeline reads (every num_input_pipelines-th of 0..count-1), in a
    new random order in every pass when `shuffle`.

    The order is a stateless permutation of all `count` indices (tf.random.experimental.index_shuffle) keyed
    by `seed` and a value drawn at the start of each pass, so every pipeline of a multi-worker run permutes
    alike before taking its share, and a checkpoint of the input position holds that value and the position
    in the pass: a few kilobytes, where a shuffle buffer of the whole list made every training checkpoint
    carry the list (15 MB and ~1 s per save for the 50,000 synthetic indices; the decoded images of an
    array source)."""

    def one_pass(key):
        permutation_seed = tf.stack([key, tf.constant(seed or 0, tf.int64)])
        return tf.data.Dataset.range(count).map(
            as_written(lambda i: tf.random.experimental.index_shuffle(i, permutation_seed, count - 1)))

    if shuffle:
        first = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        indices = first.flat_map(as_written(one_pass))
    else:
        indices = tf.data.Dataset.range(count)
    return _shard(indices, input_context)


@gin.configurable
def synthetic_source(num_examples=50_000, num_classes=10, resolution=32, seed=0, shape_size=1.0):
    """The embedded procedural dataset (`sagan_tf.data.synthetic`): no download, any resolution;
    `shape_size` scales the shapes (1: the original sizes; larger shapes are easier to tell apart)."""
    if not 1 <= num_classes <= synthetic.MAX_CLASSES:
        raise DataError(
            f"The synthetic dataset has 1 to {synthetic.MAX_CLASSES} classes. "
            f"Received: `num_classes={num_classes}`"
        )
    if not 0.0 < shape_size <= synthetic.MAX_SHAPE_SIZE:
        raise DataError(f"`shape_size` of the synthetic dataset must be in (0, {synthetic.MAX_SHAPE_SIZE}]. "
                        f"Received: `shape_size={shape_size}`")

    def make(input_context, shuffle, seed_=None, buffer=None):
        del buffer  # every pass is a permutation of the whole index list
        return _example_order(num_examples, input_context, shuffle, seed_).map(
            as_written(lambda i: synthetic.example(i, seed, num_classes, resolution, shape_size)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    size = "" if shape_size == 1.0 else f"-size{shape_size:g}"
    return Source(f"synthetic-{num_classes}c-{resolution}px-seed{seed}{size}", num_classes, make)


def _check_arrays(images, labels, num_classes):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"Image arrays must be [N, H, W] or [N, H, W, 1|3|4]. Received shape {images.shape}."
        )
    if images.dtype != np.uint8:
        raise DataError(f"Image arrays must be uint8 in [0, 255]. Received dtype {images.dtype}.")
    if labels is None:
        return images, np.zeros(len(images), np.int32)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(labels) != len(images):
        raise DataError(f"{len(images)} images but {len(labels)} labels.")
    bad = np.flatnonzero((labels < 0) | (labels >= max(num_classes, 1)))
    if num_classes and bad.size:
        raise DataError(
            f"Label {labels[bad[0]]} of example {bad[0]} is outside [0, {num_classes}) "
            f"({bad.size} labels out of range)."
        )
    return images, labels.astype(np.int32)


@gin.configurable
def array_source(images, labels=None, num_classes=None, name="arrays"):
    """In-memory uint8 arrays [N, H, W(, C)] and int labels [N]; shards by element."""
    if num_classes is None:
        num_classes = 0 if labels is None else int(np.max(labels)) + 1
    images, labels = _check_arrays(images, labels, num_classes)

    def make(input_context, shuffle, seed=None, buffer=None):
        del buffer  # every pass is a permutation of the whole array
        return _example_order(len(images), input_context, shuffle, seed).map(
            lambda i: (tf.gather(images, i), tf.gather(labels, i)))

    return Source(name, num_classes, make)


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path):
    """Reads a (gzipped) IDX file into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataError(f"{path} is not an unsigned-byte IDX file.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {array.size}.")
    return array.reshape(shape)


def load_fashion_mnist(split="train", data_dir=None):
    """Fashion-MNIST from Debian's `dataset-fashion-mnist` package: (uint8 [N, 28, 28], int labels [N])."""
    data_dir = os.path.expanduser(data_dir or os.environ.get("SAGAN_FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    if split not in _FASHION_FILES:
        raise DataError(f"Fashion-MNIST splits are 'train' and 'test'. Received: `split={split!r}`")
    paths = [os.path.join(data_dir, name) for name in _FASHION_FILES[split]]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise DataError(
            f"Fashion-MNIST not found: {missing[0]} does not exist. Install it with "
            "`apt-get update && apt-get install -y dataset-fashion-mnist` or point "
            "`fashion_mnist_source.data_dir` (or $SAGAN_FASHION_MNIST_DIR) at a folder holding "
            f"{', '.join(_FASHION_FILES[split])}."
        )
    return read_idx(paths[0]), read_idx(paths[1])


@gin.configurable
def fashion_mnist_source(split="train", data_dir=None, classes=None, max_examples=None):
    """Fashion-MNIST (28x28 grayscale, 10 classes), optionally only some `classes` (relabelled 0..)."""
    images, labels = load_fashion_mnist(split, data_dir)
    if classes is not None:
        keep = np.isin(labels, classes)
        remap = {c: i for i, c in enumerate(classes)}
        images, labels = images[keep], np.array([remap[int(c)] for c in labels[keep]])
    if max_examples:
        images, labels = images[:max_examples], labels[:max_examples]
    num_classes = len(classes) if classes is not None else 10
    return array_source(images, labels, num_classes, name=f"fashion_mnist-{split}")


@gin.configurable
def folder_source(path, conditional=True, on_corrupt="error", validate=True):
    """Images in a folder: one sub-folder per class (sorted names -> labels 0..), or flat.

    JPEG, PNG, BMP and GIF (first frame); grayscale and RGBA are converted to RGB. With
    `validate` every file is opened once with Pillow before training; corrupt or truncated files
    stop with their name (`on_corrupt="error"`) or are skipped and counted (`"skip"`).
    """
    if on_corrupt not in ("error", "skip"):
        raise DataError(f"`on_corrupt` must be 'error' or 'skip'. Received: `on_corrupt={on_corrupt!r}`")
    path = os.path.expanduser(path)  # a gin string's "~/..."
    listing = files.list_image_folder(path, conditional)
    paths, labels = listing.paths, listing.labels
    corrupt = ()
    if validate:
        corrupt = files.find_corrupt(paths)
        if corrupt and on_corrupt == "error":
            raise DataError(
                f"{len(corrupt)} unreadable image file(s) in {path}, first: {corrupt[0][0]} "
                f"({corrupt[0][1]}). Remove them or use `folder_source.on_corrupt = 'skip'`."
            )
        bad = {p for p, _ in corrupt}
        keep = [i for i, p in enumerate(paths) if p not in bad]
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
        if not paths:
            raise DataError(f"Every image in {path} is unreadable.")
        if corrupt:
            print(f"folder_source: skipped {len(corrupt)} unreadable image file(s) of {len(listing.paths)} in {path} "
                  f"(first: {corrupt[0][0]}: {corrupt[0][1]}); training on {len(paths)}.", flush=True)

    paths_t, labels_t = tf.constant(paths), tf.constant(labels, tf.int32)

    def make(input_context, shuffle, seed=None, buffer=None):
        del buffer  # every pass is a permutation of the whole file list
        return _example_order(len(paths), input_context, shuffle, seed).map(
            lambda i: (files.decode_image(tf.io.read_file(tf.gather(paths_t, i))), tf.gather(labels_t, i)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return Source(f"folder-{os.path.abspath(path)}", listing.num_classes, make, tuple(corrupt))


def _check_on_corrupt(on_corrupt):
    if on_corrupt not in ("error", "skip"):
        raise DataError(f"`on_corrupt` must be 'error' or 'skip'. Received: `on_corrupt={on_corrupt!r}`")


def _validate_records(shards, image_key, on_corrupt, where, binding):
    """`files.find_corrupt_records` of `shards`: stops with the first bad record (`on_corrupt="error"`) or
    prints the count and returns them (`"skip"`)."""
    bad = files.find_corrupt_records(shards, image_key)
    if bad and on_corrupt == "error":
        raise files.bad_records_error(bad, where, f"rewrite the file, or set `{binding}.on_corrupt = 'skip'`")
    if bad:
        print(f"{binding}: skipping {len(bad)} unreadable record(s) in {where} (first: {bad[0]}).", flush=True)
    return bad


def _records_without(bad):
    """(file -> records readable before a truncation or -1, a `tf.constant` of the skipped "file:index" keys)."""
    limits = {b.path: b.index for b in bad if b.truncated}
    keys = [f"{b.path}:{b.index}" for b in bad if not b.truncated] or [""]
    return limits, tf.constant(keys)


@gin.configurable
def tfrecord_source(file_pattern, num_classes=None, on_corrupt="error", validate=True):
    """TFRecord shards written by `tools/prepare_data.py`; shards by file across input pipelines.

    With `validate` every record is read and its image decoded once with Pillow before training; a truncated
    file or an image that does not decode stops with the file and the record's index (`on_corrupt="error"`),
    or is left out and counted (`"skip"`: the records of a truncated file up to the truncation are kept).
    """
    _check_on_corrupt(on_corrupt)
    file_pattern = os.path.expanduser(file_pattern)  # a gin string's "~/..."
    shards = sorted(tf.io.gfile.glob(file_pattern))
    if not shards:
        raise DataError(
            f"No TFRecord files match tfrecord_source.file_pattern = {file_pattern!r}",
            "write them with `python tools/prepare_data.py --folder=IMAGES --output_dir=DIR` (or --tfds=NAME "
            "instead of --folder), then bind tfrecord_source.file_pattern = 'DIR/train-*'",
        )
    bad = _validate_records(shards, "image/encoded", on_corrupt, file_pattern, "tfrecord_source") if validate else []
    if num_classes is None:
        num_classes = files.read_num_classes(shards[0])
    limits, skipped = _records_without(bad)
    files_t = tf.constant(shards)
    limits_t = tf.constant([limits.get(s, -1) for s in shards], tf.int64)

    def read(path, limit):
        records = tf.data.TFRecordDataset(path).take(limit).enumerate()
        keep = lambda i, r: ~tf.reduce_any(tf.equal(path + ":" + tf.strings.as_string(i), skipped))  # noqa: E731
        return records.filter(keep).map(lambda i, r: r)

    def make(input_context, shuffle, seed=None, buffer=10_000):
        dataset = _shard(tf.data.Dataset.from_tensor_slices((files_t, limits_t)), input_context)
        if shuffle:
            dataset = dataset.shuffle(len(shards), seed=seed)
        dataset = dataset.interleave(read, cycle_length=tf.data.AUTOTUNE, num_parallel_calls=tf.data.AUTOTUNE,
                                     deterministic=True)
        if shuffle:  # serialised examples: the buffer holds encoded images, not decoded ones
            dataset = dataset.shuffle(buffer, seed=seed)
        return dataset.map(files.parse_example, num_parallel_calls=tf.data.AUTOTUNE)

    return Source(f"tfrecord-{file_pattern}", num_classes, make, tuple(bad))


@gin.configurable
def tfds_source(name, split="train", data_dir=None, image_key="image", label_key="label", on_corrupt="error",
                validate=True):
    """A tensorflow-datasets dataset that is already prepared in `data_dir`; never downloads.

    `validate` and `on_corrupt` check the split's TFRecord files as `tfrecord_source` does: a bad record
    stops with its file and index ("error") or is left out and counted ("skip").
    """
    _check_on_corrupt(on_corrupt)
    import tensorflow_datasets as tfds  # imported lazily: slow, and only this source needs it

    data_dir = os.path.expanduser(data_dir) if data_dir else data_dir  # a gin string's "~/..."
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError
        raise DataError(f"tensorflow-datasets has no dataset {name!r}: {error}") from error
    if not builder.is_prepared():
        manual = os.path.join(builder.data_dir_root, "downloads", "manual")
        raise DataError(
            f"The tfds dataset {name!r} is not prepared in {builder.data_dir_root}; sagan_tf never "
            f"downloads at run time. Prepare it once from its archives: put them in {manual} "
            "(imagenet2012: ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar; cifar10: "
            f"cifar-10-binary.tar.gz) and run `python tools/prepare_data.py --tfds={name} "
            f"--manual_dir={manual} --data_dir={builder.data_dir_root}`."
        )
    features = builder.info.features
    num_classes = features[label_key].num_classes if label_key in features else 0

    image_feature = features[image_key]
    bad = []
    if validate:
        paths = [os.fspath(p) for p in builder.info.splits[split].filepaths]
        bad = _validate_records(paths, image_key, on_corrupt, f"tfds {name} {split}", "tfds_source")
        truncated = [b for b in bad if b.truncated]
        if truncated:  # tfds's reader cannot stop short of a truncation; skipping its error would loop forever
            raise DataError(f"The tfds file {truncated[0].path} is truncated at record {truncated[0].index}",
                            f"prepare {name} again (tools/prepare_data.py --tfds={name} --manual_dir=...)")
    skipped = tf.constant([f"{os.path.basename(b.path)}__{b.index}" for b in bad] or [""])

    def make(input_context, shuffle, seed=None, buffer=10_000):
        read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=seed, add_tfds_id=bool(bad))
        # Images stay encoded through the shuffle buffer and are decoded after it.
        dataset = builder.as_dataset(split=split, shuffle_files=shuffle, read_config=read_config,
                                     decoders={image_key: tfds.decode.SkipDecoding()})
        if bad:  # tfds ids are "<file name>__<record index>"
            dataset = dataset.filter(lambda e: ~tf.reduce_any(tf.equal(e["tfds_id"], skipped)))
        if shuffle:
            dataset = dataset.shuffle(buffer, seed=seed)
        label = (lambda e: tf.cast(e[label_key], tf.int32)) if num_classes else (lambda e: tf.constant(0))
        return dataset.map(lambda e: (image_feature.decode_example(e[image_key]), label(e)),
                           num_parallel_calls=tf.data.AUTOTUNE)

    def encoded_examples():
        dataset = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()})
        for example in dataset.as_numpy_iterator():
            yield example[image_key], int(example[label_key]) if num_classes else 0

    return Source(f"tfds-{name}-{split}", num_classes, make, tuple(bad), encoded_examples=encoded_examples)


def prepare_tfds(name, manual_dir, data_dir=None):
    """Builds the tfds dataset `name` into `data_dir` from the archives in `manual_dir` with tfds's own
    builder, downloading nothing; returns its `DatasetInfo`."""
    import tensorflow_datasets as tfds  # noqa: PLC0415

    manual_dir = os.path.expanduser(manual_dir)
    data_dir = os.path.expanduser(data_dir) if data_dir else data_dir
    if not os.path.isdir(manual_dir):
        raise DataError(f"--manual_dir {manual_dir} is not a folder.")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError
        raise DataError(f"tensorflow-datasets has no dataset {name!r}: {error}") from error
    config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    try:
        builder.download_and_prepare(download_config=config)
    except AssertionError as error:  # tfds's word for missing manual archives
        raise DataError(f"Cannot prepare {name} from {manual_dir}: {' '.join(str(error).split())}") from error
    return builder.info
