"""Does attention help with long-range structure? Attention vs no-attention on the mirrored-pair data.

    python tools/bench_long_range.py --out_dir=runs/long_range [--num_steps=1500] [--num_samples=500]

Trains `gin/long_range.gin` twice with the same budget, once as is (attention at 16x16 in G and D) and
once with `ablations/no_attention.gin`, into OUT_DIR/attention and OUT_DIR/no_attention (a rerun
resumes unfinished runs and reuses finished ones), then scores `num_samples` generated images of each
with the exact mirrored-pair checker (`sagan_tf.eval.symmetry`) next to real images (near 1) and
real images with swapped right halves (chance). Prints the table, writes OUT_DIR/long_range.json and
sample grids OUT_DIR/<variant>_samples.png.
"""

import json
import os
import subprocess
import sys

from absl import app, flags

flags.DEFINE_string("out_dir", "runs/long_range", "Where the two runs and the report go.")
flags.DEFINE_integer("num_steps", 1500, "Generator steps of each run.")
flags.DEFINE_integer("num_samples", 500, "Generated (and real) images scored per variant.")
flags.DEFINE_integer("seed", 0, "Seed of the scored samples.")
flags.DEFINE_multi_string("gin_param", [], "Extra bindings for both runs.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {"attention": ["long_range.gin"], "no_attention": ["long_range.gin", "ablations/no_attention.gin"]}


def train(model_dir, gin_files, num_steps, params):
    cmd = [sys.executable, "-m", "sagan_tf.train", f"--model_dir={model_dir}"]
    cmd += [f"--gin_file={f}" for f in gin_files]
    cmd += [f"--gin_param={p}" for p in [f"train.num_steps = {num_steps}", *params]]
    subprocess.run(cmd, check=True, cwd=REPO)


def generated_images(model_dir, count, seed):
    """uint8 [count, R, R, 3] from the run's latest checkpoint, labels uniform over the classes."""
    import gin
    import numpy as np

    from sagan_tf import restore, serving

    gin.clear_config()
    run = restore.load_run(model_dir)
    module = serving.GeneratorModule(run.model.sampling_generator, run.model.num_classes)
    outputs = module.sample(np.int64(seed), np.int32(count), np.zeros([0], np.int32), np.float32(0.0))
    return outputs["images"].numpy(), run.step


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from sagan_tf.data import synthetic
    from sagan_tf.eval import symmetry
    from sagan_tf.images import image_grid

    report = {"num_steps": FLAGS.num_steps, "num_samples": FLAGS.num_samples}
    real = np.stack([synthetic.example(i, 12345, 10, 32)[0].numpy() for i in range(FLAGS.num_samples)])
    report["real"] = symmetry.consistency_score(real)
    report["real_swapped_halves"] = symmetry.consistency_score(symmetry.swap_halves(real))
    for name, gin_files in VARIANTS.items():
        model_dir = os.path.join(FLAGS.out_dir, name)
        train(model_dir, gin_files, FLAGS.num_steps, FLAGS.gin_param)
        images, step = generated_images(model_dir, FLAGS.num_samples, FLAGS.seed)
        consistent, iou, colour = symmetry.pair_consistency(images)
        report[name] = {"score": float(consistent.mean()), "median_iou": float(np.median(iou)),
                        "median_colour_difference": float(np.median(colour)), "step": step}
        grid = image_grid(images[:64], rows=8)
        tf.io.write_file(os.path.join(FLAGS.out_dir, f"{name}_samples.png"), tf.io.encode_png(grid))
    with open(os.path.join(FLAGS.out_dir, "long_range.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nMirrored-pair consistency of {FLAGS.num_samples} images after {FLAGS.num_steps} steps:")
    print(f"{'real images':<28} {report['real']:.3f}")
    print(f"{'real, swapped halves':<28} {report['real_swapped_halves']:.3f}   (chance)")
    for name in VARIANTS:
        r = report[name]
        print(f"{name + ' (generated)':<28} {r['score']:.3f}   median IoU {r['median_iou']:.2f}, "
              f"colour difference {r['median_colour_difference']:.3f}")


if __name__ == "__main__":
    app.run(main)
