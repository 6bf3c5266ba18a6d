"""Image files and TFRecords: listing, validation, decoding, and the project's TFRecord format."""

import concurrent.futures
import dataclasses
import os

import numpy as np
import tensorflow as tf

from sagan_tf.commands import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class DataError(UserError):
    """Bad or missing data (re-exported as sagan_tf.data.DataError)."""


@dataclasses.dataclass
class FolderListing:
    paths: list
    labels: list
    class_names: list

    @property
    def num_classes(self):
        return len(self.class_names)


def _images_in(directory):
    return sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(directory, name))
    )


def list_image_folder(path, conditional=True):
    """Lists a folder of images: class sub-folders (sorted -> labels 0, 1, ...) or flat."""
    if not os.path.isdir(path):
        raise DataError(f"The image folder {path!r} does not exist or is not a directory.")
    if not conditional:
        paths = _images_in(path)
        for root, dirs, _ in sorted(os.walk(path)):
            dirs.sort()
            if root != path:
                paths.extend(_images_in(root))
        if not paths:
            raise DataError(f"No {'/'.join(IMAGE_EXTENSIONS)} images in {path!r}.")
        return FolderListing(paths, [0] * len(paths), [])
    class_names = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if not class_names:
        raise DataError(
            f"{path!r} has no class sub-folders. Put each class's images in its own folder, or "
            "set `folder_source.conditional = False` for a flat, unlabelled folder."
        )
    paths, labels = [], []
    for label, name in enumerate(class_names):
        images = _images_in(os.path.join(path, name))
        if not images:
            raise DataError(f"The class folder {os.path.join(path, name)!r} has no images.")
        paths.extend(images)
        labels.extend([label] * len(images))
    return FolderListing(paths, labels, class_names)


def _check_file(path):
    from PIL import Image  # Pillow ships with the stack (via tensorflow-datasets / keras)

    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:  # verify() misses truncation: decode the pixels too
            image.load()
    except Exception as error:  # Pillow raises many types for bad files
        return f"{type(error).__name__}: {error}"
    return None


def _check_bytes(encoded):
    import io  # noqa: PLC0415

    return _check_file(io.BytesIO(encoded))


def find_corrupt(paths, workers=None):
    """[(path, reason)] of the files Pillow cannot fully decode, in input order."""
    workers = workers or min(32, (os.cpu_count() or 1) * 4)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        reasons = list(pool.map(_check_file, paths))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


def decode_image(encoded):
    """Encoded JPEG/PNG/BMP/GIF bytes -> uint8 [H, W, 3] (grayscale and RGBA become RGB)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


# The project's TFRecord format: one tf.train.Example per image.
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/num_classes": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


def make_example(encoded, label, num_classes):
    """A serialised tf.train.Example of one encoded image."""
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "image/num_classes": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(num_classes)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example(serialized):
    """Serialised example -> (uint8 [H, W, 3], int32 label)."""
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    return decode_image(parsed["image/encoded"]), tf.cast(parsed["image/class/label"], tf.int32)


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """A record of a TFRecord file that cannot be used: a truncated record (the file ends inside it: it and
    any later records are unreadable) or an example whose image does not decode."""

    path: str
    index: int
    reason: str
    truncated: bool = False

    def __str__(self):
        return f"{self.path} record {self.index} ({self.reason})"


def _records(path, image_key):
    """(index, encoded image bytes) of every record of a TFRecord file; a `BadRecord` for a truncated record
    (the last item then) or an example without the image."""
    iterator, index = iter(tf.data.TFRecordDataset(path).prefetch(64)), 0
    while True:
        try:
            record = next(iterator).numpy()
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            reason = " ".join(str(error).split("[Op:")[0].split("}}")[-1].split())
            yield BadRecord(path, index, f"truncated file: {reason}", True)
            return
        try:
            values = tf.train.Example.FromString(record).features.feature[image_key].bytes_list.value
        except Exception as error:  # protobuf's DecodeError
            values, reason = None, f"not a tf.train.Example: {error}"
        else:
            reason = f"no {image_key!r} bytes"
        yield (index, values[0]) if values else BadRecord(path, index, reason)
        index += 1


def find_corrupt_records(paths, image_key="image/encoded", workers=None):
    """[`BadRecord`] of TFRecord files of tf.train.Examples: truncated files and images Pillow cannot fully
    decode, in file and record order."""
    workers = workers or min(32, (os.cpu_count() or 1) * 4)
    bad = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for path in paths:
            items = list(_records(path, image_key))
            found = [item for item in items if isinstance(item, BadRecord)]
            good = [item for item in items if not isinstance(item, BadRecord)]
            reasons = pool.map(_check_bytes, [encoded for _, encoded in good])
            found += [BadRecord(path, i, r) for (i, _), r in zip(good, reasons) if r is not None]
            bad += sorted(found, key=lambda b: b.index)
    return bad


def bad_records_error(bad, where, fix):
    """The `DataError` of `find_corrupt_records`'s findings: the first bad record's file and index, and the count."""
    return DataError(f"{len(bad)} unreadable record(s) in {where}, first: {bad[0]}", fix)


def read_num_classes(shard):
    """The `image/num_classes` recorded in the first example of a shard."""
    for record in tf.data.TFRecordDataset(shard).take(1):
        return int(tf.io.parse_single_example(record, FEATURES)["image/num_classes"].numpy())
    raise DataError(f"The TFRecord file {shard} is empty.")


def encode_png(image):
    """uint8 [H, W, C] numpy -> PNG bytes."""
    return tf.io.encode_png(np.asarray(image, np.uint8)).numpy()
