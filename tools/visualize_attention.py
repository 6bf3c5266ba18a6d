"""Draws where each query point attends, per attention layer, as in the paper's figures.

    python tools/visualize_attention.py --model_dir=runs/default --output=attention.png \
        [--network=generator|discriminator] [--num_images=4] [--queries=0.25,0.25;0.5,0.75] [--num_queries=3]

Generator: images sampled from the run's (EMA) generator, with the maps of its attention layers.
Discriminator: the maps of D's attention layers on real images of the run's data (or on generated
images with --discriminator_on=generated). Each row: the image with the query dots, then per layer and
query the attention map (keys pooled by the layer are shown at the key resolution, upsampled) over
the darkened image, with the query's dot. The figure is also written to TensorBoard under
`<model_dir>/attention` (tag `attention/<network>`) unless --notensorboard.
"""

import os

from absl import flags

from lab import checks
from sagan_tf import commands, logs  # (no TensorFlow)

flags.DEFINE_string("model_dir", None, "A training directory.")
flags.DEFINE_string("checkpoint", None, "A step, 'best' or a path; default: the latest.")
flags.DEFINE_string("output", None, "The PNG to write (default: MODEL_DIR/attention.png).")
flags.DEFINE_enum("network", "generator", ["generator", "discriminator"], "Whose attention to draw.")
flags.DEFINE_enum("discriminator_on", "real", ["real", "generated"], "Images the discriminator looks at.")
flags.DEFINE_integer("num_images", 4, "Rows of the figure.", lower_bound=1)
flags.DEFINE_string("queries", None, "Query points 'y,x;y,x' as fractions of the image in [0, 1).")
flags.DEFINE_integer("num_queries", 3, "Spread query points when --queries is not given.", lower_bound=1)
flags.DEFINE_integer("scale", 0, "Panel upscaling (0: to at least 128 pixels).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "z and label seed.")
flags.DEFINE_bool("tensorboard", True, "Also write the figure to <model_dir>/attention.")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def parse_queries(text):
    """[(y, x)] of 'y,x;y,x', fractions in [0, 1); raises UserError on anything else."""
    points = []
    for part in text.split(";"):
        try:
            y, x = (float(v) for v in part.split(","))
        except ValueError:
            raise commands.UserError(f"--queries={text}: {part!r} is not a point 'y,x'",
                                     "pass points such as --queries='0.25,0.25;0.5,0.75'") from None
        if not (0 <= y < 1 and 0 <= x < 1):
            raise commands.UserError(f"--queries={text}: {part!r} lies outside the image",
                                     "pass fractions of the image in [0, 1), such as 0.5,0.75")
        points.append((y, x))
    return points


def attention_images(run, network, count, seed, on="real"):
    """(images float [B, R, R, C] in [-1, 1], {layer: attention map}) for the run's `network`."""
    import numpy as np

    model = run.model
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, model.num_classes, count).astype(np.int32) if model.num_classes else None
    generator = model.sampling_generator
    z = rng.randn(count, generator.dim_z).astype(np.float32)
    images, maps = generator(z, labels, training=False, return_attention=True)
    if network == "generator":
        return images.numpy(), {k: v.numpy() for k, v in maps.items()}
    if on == "real":
        from sagan_tf.eval.periodic import evaluation_input

        real, real_labels = next(iter(evaluation_input(count).input_fn(None)))
        images, labels = real, (real_labels if model.num_classes else None)
    _, maps = model.discriminator(images, labels, training=False, return_attention=True)
    return np.asarray(images), {k: v.numpy() for k, v in maps.items()}


def main(argv):
    del argv
    checks.run_folder("model_dir", FLAGS.model_dir)
    points = parse_queries(FLAGS.queries) if FLAGS.queries else None
    if FLAGS.output:
        checks.output_file("output", FLAGS.output, "pass a .png file path")
    logs.quiet_libraries()
    import tensorflow as tf  # noqa: PLC0415

    from sagan_tf import attention_maps, restore  # noqa: PLC0415

    run = restore.load_run(FLAGS.model_dir, FLAGS.checkpoint)
    if FLAGS.network == "discriminator" and FLAGS.discriminator_on == "real":
        restore.parse_run_config(FLAGS.model_dir)  # the run's data, for its real images
    images, maps = attention_images(run, FLAGS.network, FLAGS.num_images, FLAGS.seed, FLAGS.discriminator_on)
    if not maps:
        raise commands.UserError(f"the {FLAGS.network} of {FLAGS.model_dir} has no attention layer",
                                 "pass a run trained with attention, or the other --network")
    points = points or attention_maps.default_queries(FLAGS.num_queries)
    scale = FLAGS.scale or max(1, 128 // images.shape[1])
    figure = attention_maps.attention_figure(images, maps, points, scale=scale)
    layers = {name: (int(round(m.shape[1] ** 0.5)),) * 2 for name, m in maps.items()}
    shown = "generated images" if FLAGS.network == "generator" or FLAGS.discriminator_on != "real" else "real images"
    title = f"{FLAGS.network} attention on {shown}, step {run.step} ({run.checkpoint})"
    figure = attention_maps.annotate_figure(figure, title, points, layers, images.shape[1] * scale)
    output = FLAGS.output or os.path.join(FLAGS.model_dir, "attention.png")
    tf.io.write_file(output, tf.io.encode_png(figure))
    if FLAGS.tensorboard:
        with tf.summary.create_file_writer(os.path.join(FLAGS.model_dir, "attention")).as_default(step=run.step or 0):
            tf.summary.image(f"attention/{FLAGS.network}", figure[None], max_outputs=1)
    print(f"Wrote {output}: {len(images)} images, layers {sorted(maps)}, {len(points)} queries, "
          f"checkpoint {run.checkpoint}.")


if __name__ == "__main__":
    commands.run("tools/visualize_attention.py", main, __doc__)
