"""Input-pipeline throughput: images/s of `build_input` on a JPEG folder at 128x128 (decode, centre
crop, resize, flip) and on the embedded synthetic dataset.

  python tools/bench_input.py [--num_images=512] [--batch=64] [--batches=40]

Writes the JPEGs (random sizes around 500x375, like ImageNet's) to a temporary folder first.
"""

import os
import tempfile

from absl import flags

from sagan_tf import commands, logs  # (no TensorFlow)

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 512, "JPEG files to write.", lower_bound=1)
flags.DEFINE_integer("batch", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("batches", 40, "Timed batches (after 5 warm-up batches).", lower_bound=1)


def _rate(spec):
    from lab.timing import time_calls  # noqa: PLC0415

    iterator = iter(spec.input_fn())
    seconds = time_calls(lambda: next(iterator), FLAGS.batches, warmup=5)
    return FLAGS.batches * FLAGS.batch / sum(seconds)


def main(argv):
    del argv
    if FLAGS.num_images < FLAGS.batch:
        raise commands.UserError(f"--num_images={FLAGS.num_images} is fewer than one --batch={FLAGS.batch}",
                                 "pass --num_images at least --batch")
    logs.quiet_libraries()
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from sagan_tf.data import build_input, folder_source, synthetic_source  # noqa: PLC0415  (TensorFlow)

    rng = np.random.RandomState(0)
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "class0"))
        for i in range(FLAGS.num_images):
            h, w = rng.randint(300, 450), rng.randint(400, 550)
            pixels = rng.randint(0, 255, (h // 8, w // 8, 3), np.uint8)
            Image.fromarray(pixels).resize((w, h)).save(os.path.join(root, "class0", f"{i}.jpg"), quality=90)
        jpeg = build_input(folder_source(root), resolution=128, global_batch_size=FLAGS.batch)
        jpeg_rate = _rate(jpeg)
    for resolution in (32, 128):
        synth = build_input(synthetic_source(resolution=resolution), resolution=resolution,
                            global_batch_size=FLAGS.batch)
        print(f"synthetic {resolution}x{resolution}: {_rate(synth):8.1f} images/s")
    print(f"JPEG (~500x375) -> 128x128: {jpeg_rate:8.1f} images/s   cores: {os.cpu_count()}")


if __name__ == "__main__":
    commands.run("tools/bench_input.py", main, __doc__)
