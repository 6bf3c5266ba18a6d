"""Does attention help with long-range structure? Attention vs no attention on the mirrored-pair data,
over several seeds, with a test of the difference.

    .venv/bin/python tools/bench_long_range.py --out_dir=runs/long_range --seeds=0,1,2,3,4 [--num_steps=3500]

Trains `gin/long_range.gin` (the embedded synthetic data: a shape and its mirror image half an image
apart) with the same budget once as is (attention at 16x16 in G and D) and once with
`ablations/no_attention.gin`, for every seed (`--seed`: weights, z, data order), into
OUT_DIR/<variant>/seed_<k> (trained by the experiment runner's stage, `lab.experiments.train_run`: a rerun resumes unfinished
runs and reuses finished ones). Each run's
`num_samples` generated images are scored with the exact mirrored-pair checker (`sagan_tf.eval.symmetry`)
and the class-identity checker (`sagan_tf.eval.shapes`), next to real images (near 1) and real images
with swapped right halves (chance). Per variant: mean and standard deviation over seeds; the difference
(attention minus none) with Welch's t-test and a bootstrap 95% interval over seeds. Writes
OUT_DIR/long_range.json and OUT_DIR/long_range.md, and grids OUT_DIR/<variant>_seed_<k>.png.
"""

import os

from absl import flags

from lab import checks, records
from lab.stats import compare
from sagan_tf import commands, logs  # (no TensorFlow)

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("out_dir", "runs/long_range", "Where the runs and the report go.")
    flags.DEFINE_integer("num_steps", 3500, "Generator steps of each run (gin/long_range.gin's budget).", lower_bound=1)
    flags.DEFINE_integer("num_samples", 500, "Generated (and real) images scored per run.", lower_bound=2)
    flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Run seeds (each variant is trained once per seed).")
    flags.DEFINE_integer("sample_seed", 0, "Seed of the scored samples.")
    flags.DEFINE_multi_string("gin_param", [], "Extra bindings for every run.")


VARIANTS = {"attention": ["long_range.gin"], "no_attention": ["long_range.gin", "ablations/no_attention.gin"]}
METRICS = ("pair_consistency", "class_identity")


def train(model_dir, gin_files, num_steps, seed, params):
    """Trains (or resumes, or keeps) one run with the experiment runner's training stage."""
    from lab.experiments import train_run  # noqa: PLC0415

    spec = {"gin_files": [], "num_steps": num_steps, "gin_params": list(params)}
    train_run(spec, {"name": os.path.basename(os.path.dirname(model_dir)), "gin_files": gin_files}, seed, model_dir)


def summarise(per_seed):
    """{variant: {metric: {"mean", "std", "n", "values"}}} and the comparisons of the metrics."""
    import numpy as np  # noqa: PLC0415

    summary = {}
    for variant, runs in per_seed.items():
        summary[variant] = {}
        for metric in METRICS:
            values = [run[metric] for run in runs.values()]
            summary[variant][metric] = {"mean": float(np.mean(values)), "n": len(values), "values": values,
                                        "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}
    comparisons = {metric: compare(summary["attention"][metric]["values"], summary["no_attention"][metric]["values"])
                   for metric in METRICS}
    return summary, comparisons


def markdown(report):
    lines = [f"{report['num_steps']} generator steps per run, seeds {report['seeds']}, {report['num_samples']} "
             f"generated images scored per run; {report['machine']}. Mean ± standard deviation over seeds.", "",
             "| variant | mirrored-pair consistency | class identity | per seed (pairs / classes) |", "|---|---|---|---|"]
    for variant in VARIANTS:
        row = report["summary"][variant]
        cells = []
        for metric in METRICS:
            m = row[metric]
            cells.append(f"{m['mean']:.3f}" + (f" ± {m['std']:.3f}" if m["std"] is not None else ""))
        seeds = "; ".join(f"{seed}: {run['pair_consistency']:.2f} / {run['class_identity']:.2f}"
                          for seed, run in report["per_seed"][variant].items())
        lines.append(f"| {variant.replace('_', ' ')} | {cells[0]} | {cells[1]} | {seeds} |")
    lines.append(f"| real images | {report['real']['pair_consistency']:.3f} | {report['real']['class_identity']:.3f} | |")
    lines.append(f"| real, right halves swapped (chance) | {report['real_swapped_halves']:.3f} | - | |")
    lines += ["", "Attention minus no attention:", ""]
    for metric in METRICS:
        c = report["comparisons"][metric]
        test = f"Welch's t = {c['t']:.2f}, p = {c['p']:.3g}" if "t" in c else "no t-test (fewer than 2 seeds or no spread)"
        lines.append(f"- {metric.replace('_', ' ')}: {c['difference']:+.3f} ({test}; bootstrap 95% interval "
                     f"{c['interval_95'][0]:+.3f} to {c['interval_95'][1]:+.3f})")
    return "\n".join(lines) + "\n"


def generated_images(model_dir, count, seed):
    """(uint8 [count, R, R, 3], labels [count], step) from the run's latest checkpoint, labels uniform over
    the classes."""
    import gin
    import numpy as np

    from sagan_tf import restore, serving

    gin.clear_config()
    run = restore.load_run(model_dir)
    module = serving.GeneratorModule(run.model.sampling_generator, run.model.num_classes)
    outputs = module.sample(np.int64(seed), np.int32(count), np.zeros([0], np.int32), np.float32(0.0))
    return outputs["images"].numpy(), outputs["labels"].numpy(), run.step


def check_flags():
    """The flags' checks, before TensorFlow starts; returns the seeds as ints."""
    seeds = checks.integers("seeds", FLAGS.seeds, "pass seeds such as --seeds=0,1,2")
    if not seeds or len(set(seeds)) != len(seeds):
        raise commands.UserError(f"--seeds={','.join(FLAGS.seeds)} needs distinct seeds", "pass e.g. --seeds=0,1,2")
    checks.output_folder("out_dir", FLAGS.out_dir, "pass a folder for the runs and the report")
    return seeds


def main(argv):
    del argv
    seeds = check_flags()
    logs.quiet_libraries()
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from sagan_tf.data import synthetic  # noqa: PLC0415
    from sagan_tf.eval import shapes, symmetry  # noqa: PLC0415
    from sagan_tf.images import image_grid  # noqa: PLC0415
    from lab.machine import description  # noqa: PLC0415

    report = {"num_steps": FLAGS.num_steps, "num_samples": FLAGS.num_samples, "seeds": seeds,
              "machine": description(), "gin_params": FLAGS.gin_param}
    real, real_labels = zip(*[(image.numpy(), int(label)) for image, label in
                              (synthetic.example(i, 12345, 10, 32) for i in range(FLAGS.num_samples))])
    real = np.stack(real)
    report["real"] = {"pair_consistency": symmetry.consistency_score(real),
                      "class_identity": shapes.class_identity(real, np.array(real_labels))["score"]}
    report["real_swapped_halves"] = symmetry.consistency_score(symmetry.swap_halves(real))
    report["per_seed"] = {name: {} for name in VARIANTS}
    for seed in seeds:
        for name, gin_files in VARIANTS.items():
            model_dir = os.path.join(FLAGS.out_dir, name, f"seed_{seed}")
            train(model_dir, gin_files, FLAGS.num_steps, seed, FLAGS.gin_param)
            images, labels, step = generated_images(model_dir, FLAGS.num_samples, FLAGS.sample_seed)
            consistent, iou, _ = symmetry.pair_consistency(images)
            report["per_seed"][name][str(seed)] = {
                "pair_consistency": float(consistent.mean()), "median_iou": float(np.median(iou)),
                "class_identity": shapes.class_identity(images, labels)["score"], "step": step}
            grid = image_grid(images[:64], rows=8)
            tf.io.write_file(os.path.join(FLAGS.out_dir, f"{name}_seed_{seed}.png"), tf.io.encode_png(grid))
    report["summary"], report["comparisons"] = summarise(report["per_seed"])
    report = records.write(os.path.join(FLAGS.out_dir, "long_range.json"), report, machine=report["machine"])
    table = markdown(report)
    with open(os.path.join(FLAGS.out_dir, "long_range.md"), "w") as f:
        f.write(table)
    print(table)
    print(f"Wrote {os.path.join(FLAGS.out_dir, 'long_range.json')} and long_range.md there")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/bench_long_range.py", main, __doc__)
