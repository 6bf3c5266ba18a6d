"""Evaluates another implementation's sample sets with sagan_tf's evaluator, beside sagan_tf's own runs.

  python tools/eval_reference.py --npz=../shared/reference/ref_s0_step01500.npz \
      --output=results/reference/ref_s0_step01500.json [--key=images_ema]

Each `.npz` holds `images` uint8 [N, H, W(, C)] and `labels` [N] (and `step`, `seed`). The images go
through the same evaluator, classifier and cached real statistics as `tools/run_experiments.py` uses for
the gin config given (default: the Fashion-MNIST quality runs), so the figures are comparable with the
runner's tables. Writes the metrics with the file's step and seed and the machine.
"""

import json
import os

from absl import flags

from lab import checks, records
from sagan_tf import commands, logs  # (no TensorFlow)


FLAGS = flags.FLAGS
flags.DEFINE_string("npz", None, "A sample set: images uint8 [N, H, W(, C)], labels [N].")
flags.DEFINE_string("key", "images", "The array of images to evaluate (e.g. images_ema).")
flags.DEFINE_string("output", None, "JSON file to write.")
flags.DEFINE_multi_string("gin_file", ["experiments/fashion_mnist_quality.gin"], "The config whose data is the reference.")
flags.DEFINE_integer("num_samples", 10_000, "Images evaluated (and real images).", lower_bound=2)
flags.DEFINE_string("classifier", "port", "As for sagan_tf.evaluate.")
flags.DEFINE_bool("intra_fid", True, "Also FID per class and their mean.")
flags.mark_flags_as_required(["npz", "output"])


def read_npz(path, key):
    """(images, labels, {"step", "seed"} when stored) of a sample set; UserError when it is not one."""
    import zipfile  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    checks.file("npz", path, "pass a .npz sample set with `images` and `labels`")
    try:
        arrays = np.load(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise commands.UserError(f"--npz {path} is not a .npz file ({type(error).__name__})",
                                 "pass a file written by numpy.savez with images and labels") from None
    if not hasattr(arrays, "files"):  # a single .npy array
        raise commands.UserError(f"--npz {path} is a .npy array, not a .npz file",
                                 "pass a file written by numpy.savez with images and labels")
    with arrays:
        for name, fix in ((key, "pass --key= one of them"), ("labels", "store the labels as `labels`")):
            if name not in arrays:
                raise commands.UserError(f"{path} has no array {name!r} (it has {', '.join(arrays.files)})", fix)
        return arrays[key], arrays["labels"], {k: int(arrays[k]) for k in ("step", "seed") if k in arrays}


def main(argv):
    del argv
    checks.output_file("output", FLAGS.output, "pass a .json file path")
    checks.gin_files("gin_file", FLAGS.gin_file)
    images, labels, provenance = read_npz(FLAGS.npz, FLAGS.key)
    logs.quiet_libraries()
    from sagan_tf import config, gin_registry  # noqa: F401, PLC0415  (every configurable)
    from sagan_tf.eval.evaluator import Evaluator, format_table  # noqa: PLC0415
    from sagan_tf.eval.periodic import evaluation_input  # noqa: PLC0415

    config.parse(FLAGS.gin_file)
    evaluator = Evaluator(num_samples=FLAGS.num_samples, classifier=FLAGS.classifier, intra_fid=FLAGS.intra_fid)
    input_spec = evaluation_input(evaluator.batch_size)
    results = evaluator.evaluate_images(images, labels, input_spec.num_classes, input_spec)
    results.update(provenance, npz=os.path.basename(FLAGS.npz), key=FLAGS.key)
    results = records.write(FLAGS.output, results)
    print(format_table(results))
    table = write_table(os.path.dirname(os.path.abspath(FLAGS.output)))
    print(f"Wrote {FLAGS.output} and {table}")


def write_table(directory):
    """results.md beside the JSON files: one row per evaluated set, sorted by step and seed."""
    import glob  # noqa: PLC0415

    rows = []
    for path in glob.glob(os.path.join(directory, "*.json")):
        with open(path) as f:
            rows.append(json.load(f))
    rows.sort(key=lambda r: (r.get("step", 0), r.get("seed", 0), r.get("key", "")))
    lines = ["| sample set | seed | G steps | FID | KID x 1000 | intra-FID | images | machine |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        intra = f"{r['intra_fid']:.1f}" if "intra_fid" in r else "-"
        lines.append(f"| {r['npz']} ({r['key']}) | {r.get('seed', '-')} | {r.get('step', '-')} | {r['fid']:.1f} | "
                     f"{1000 * r['kid']:.2f} | {intra} | {r['num_generated']} | {r['machine']} |")
    path = os.path.join(directory, "results.md")
    with open(path, "w") as f:
        f.write(f"Evaluated with `tools/eval_reference.py` (classifier `{rows[0]['classifier'] if rows else '-'}`, real "
                "statistics of the runs' evaluator).\n\n" + "\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    commands.run("tools/eval_reference.py", main, __doc__)
