"""Times full SAGAN training iterations (D step + G step) of a gin config and prints the figures.

    python tools/bench_train.py --gin_file=synthetic.gin [--batch=64] [--steps=4] [--xla] \
        [--precision=bfloat16] [--attention_block_size=512] [--threads=2]

Data are random tensors of the config's resolution and class count (read from `build_input`, or
--resolution / --num_classes for configs whose data are not on this machine, e.g. imagenet.gin), so
the figures are the model's, not the input pipeline's (`tools/bench_input.py` measures that). After
--warmup iterations (tracing, XLA compilation), --steps iterations are timed one by one; the median
is reported. FLOPs are counted on the traced train step with the per-op statistics TensorFlow
registers (nested functions included): `gflop_per_iteration` and the achieved GFLOP/s count the
convolutions and matrix products of D and G, forward and backward (their gradients included), as the
PyTorch reference figures do, on the model as written (upsample then convolve, convolve then pool);
`gflop_executed_*` count what the step runs, fewer with the blocks' fused resampling convolutions
(sagan_tf.layers.resampling, --nofused_resampling to time without); `gflop_per_iteration_all_ops`
adds the element-wise ops TensorFlow counts to the executed ones. The machine's float32 matrix-product rate
(a 4096^3 matmul) is measured too, and its bfloat16 rate when the step computes in bfloat16, so the achieved
FLOP/s can be read against them. The step computes in the precision the train command would use
(--precision, else the config's train.mixed_precision, "auto" decided for this machine). `--separate_d_calls`
times the slower variant that runs D twice (real, then fake) per D step instead of once on the concatenated
batch.
"""

import os
import statistics

from absl import flags

from lab import checks, records, timing
from lab import machine as lab_machine
from lab.flops import count_flops, matmul_conv_flops
from lab.memory import AnonymousPeak, peak_rss_gib
from sagan_tf import commands, logs, machine  # (no TensorFlow)

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_multi_string("gin_file", ["synthetic.gin"], "gin files (names in gin/ or paths).")
    flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings.")
    flags.DEFINE_integer("batch", None, "Global batch (default: the config's build_input.global_batch_size).",
                         lower_bound=1)
    flags.DEFINE_integer("resolution", None, "Resolution (default: the config's data).", lower_bound=1)
    flags.DEFINE_integer("num_classes", None, "Classes (default: the config's data).", lower_bound=0)
    flags.DEFINE_integer("channels", None, "Image channels (default: the config's data; 3 with --resolution and --num_classes).",
                         lower_bound=1)
    flags.DEFINE_integer("steps", 4, "Timed iterations.", lower_bound=1)
    flags.DEFINE_integer("warmup", 1, "Untimed iterations first.", lower_bound=0)
    flags.DEFINE_bool("xla", False, "jit_compile the train step.")
    flags.DEFINE_bool("release_start_up_pages", True, "As the train command: unmap the clean library pages that "
                      "start-up touched after the imports and after the first untimed iteration (none with "
                      "--warmup=0: then after the imports only).")
    flags.DEFINE_enum("precision", None, list(machine.PRECISIONS), "As the train command's flag (mixed_float16: "
                      "--gin_param=\"train.mixed_precision = 'mixed_float16'\"). " + machine.PRECISION_HELP)
    flags.DEFINE_integer("attention_block_size", None, "Query block size of the blocked attention path (G and D); "
                         "default: the config's (imagenet.gin: 256; --gin_param=ATTENTION_BLOCK_SIZE=None for the full path).",
                         lower_bound=1)
    flags.DEFINE_bool("separate_d_calls", False, "D on real and fake in two calls (default: one concatenated call).")
    flags.DEFINE_integer("threads", None, "TensorFlow intra-op threads (default: all cores).", lower_bound=1)
    flags.DEFINE_bool("fused_resampling", True, "The blocks' resampling convolutions in their fused form "
                      "(sagan_tf.layers.resampling); --nofused_resampling times the plain compositions.")
    flags.DEFINE_bool("measure_peak", True, "Also time a 4096^3 float32 matmul (the machine's ceiling).")
    flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
    flags.DEFINE_enum("onednn", "auto", ["auto", "on", "off"], "As the train command's flag. " + machine.ONEDNN_HELP)
    flags.DEFINE_enum("filter_gradient", "auto", machine.FILTER_GRADIENT_MODES, "As the train command's flag. "
                      + machine.FILTER_GRADIENT_HELP)


def data_facts(batch, resolution, num_classes):
    """(global batch, resolution, num_classes, channels) from the flags, else from the gin config's data."""
    import gin

    from sagan_tf.data.pipeline import build_input

    if resolution is not None and num_classes is not None:
        from sagan_tf.config import is_bound

        channels = _query("build_input.channels") if is_bound("build_input.channels") else 3
        batch = batch or _query("build_input.global_batch_size")
        return batch, resolution, num_classes, channels
    spec = build_input(**({"global_batch_size": batch} if batch else {}))
    return spec.global_batch_size, resolution or spec.resolution, (
        spec.num_classes if num_classes is None else num_classes), spec.channels


def _query(name):
    """A gin binding's value, with macros (`%NAME`) evaluated."""
    import gin

    value = gin.query_parameter(name)
    if isinstance(value, gin.config.ConfigurableReference) and value.evaluate:
        value = value.scoped_configurable_fn()
    return value


PRINTED = ("resolution", "global_batch", "g_params", "d_params", "ms_per_iteration", "images_per_second",
           "gflop_per_iteration", "gflop_executed_per_iteration", "gflop_per_iteration_all_ops", "gflop_per_second",
           "gflop_executed_per_second", "matmul_gflop_per_second", "fraction_of_matmul_rate",
           "matmul_bfloat16_gflop_per_second", "peak_host_rss_gib",
           "peak_host_anonymous_gib")


def print_figures(figures):
    for key in PRINTED:
        if key in figures:
            value = figures[key]
            if value is None:  # e.g. no anonymous peak where /proc/self/status has no RssAnon
                print(f"{key:<26} -")
            else:
                print(f"{key:<26} {value:,.3f}" if isinstance(value, float) else f"{key:<26} {value:,}")


def main(argv):
    del argv
    checks.gin_files("gin_file", FLAGS.gin_file)
    if FLAGS.json:
        checks.output_file("json", FLAGS.json, "pass a .json file path")
    onednn_source = machine.set_onednn(FLAGS.onednn)  # as `sagan_tf.train` does, before TensorFlow starts
    logs.quiet_libraries()
    anonymous = AnonymousPeak().start()  # from TensorFlow's import to the last timed step
    import keras
    import numpy as np
    import tensorflow as tf

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    from sagan_tf import config, gin_registry, memory, optimizers, trainer  # noqa: F401  (gin_registry: every configurable)
    from sagan_tf.models.factory import DataFacts, build_model
    from sagan_tf.models.common import count_parameters
    stages = {"imported": anonymous.split()}  # where the peak comes from: after each stage
    if FLAGS.release_start_up_pages:
        memory.release_library_pages()  # as `sagan_tf.train` does after its imports (after the reading above)

    params = list(FLAGS.gin_param) + ([machine.precision_binding(FLAGS.precision)] if FLAGS.precision else [])
    if FLAGS.separate_d_calls:
        params.append("SAGAN.joint_discriminator = False")
    if FLAGS.attention_block_size:
        params += [f"Generator.attention_block_size = {FLAGS.attention_block_size}",
                   f"Discriminator.attention_block_size = {FLAGS.attention_block_size}"]
    config.parse(FLAGS.gin_file, params)
    trainer.apply_hardware_policy(tf.distribute.get_strategy(), FLAGS.filter_gradient, FLAGS.fused_resampling)
    batch, resolution, num_classes, channels = data_facts(FLAGS.batch, FLAGS.resolution, FLAGS.num_classes)
    channels = FLAGS.channels or channels
    precision = trainer.configured_precision()  # as the train command resolves it
    keras.mixed_precision.set_dtype_policy(precision or "float32")

    def compiled_model():  # as the configs build it, with their Adam
        built = build_model(DataFacts(num_classes, resolution, channels))
        built.compile(optimizers.FusedAdam(1e-4, 0.0, 0.9), optimizers.FusedAdam(4e-4, 0.0, 0.9))
        return built

    def traced_flops(network):  # its train step traced, never run
        return count_flops(tf.function(network.train_step).get_concrete_function((images, labels)).graph)

    model = compiled_model()
    stages["built"] = anonymous.split()  # the networks, and the optimisers' moments (built at compile)
    rng = np.random.RandomState(0)
    images = tf.constant(rng.uniform(-1, 1, (batch, resolution, resolution, channels)).astype(np.float32))
    labels = tf.constant(rng.randint(0, max(num_classes, 1), batch).astype(np.int32))
    step = tf.function(model.train_step, jit_compile=FLAGS.xla)
    blocked = model.generator.attention_block_size or model.discriminator.attention_block_size
    # The FLOP count visits a loop's body once: the blocked attention (a loop over query blocks) is counted on
    # the full path below, after the peak is read; the rest of the graph is the same.
    counts = None if blocked else count_flops(step.get_concrete_function((images, labels)).graph)
    def call():
        return step((images, labels))["d_loss"].numpy()

    warmup = FLAGS.warmup
    if FLAGS.release_start_up_pages and warmup:
        call()  # the first step, then the train command's second release
        memory.release_library_pages()
        warmup -= 1
    seconds = statistics.median(timing.time_calls(call, FLAGS.steps, warmup))
    # Read before the FLOP counts below build more models: the peak is the trained model's alone.
    stages["trained"] = anonymous.split()  # a sample of the peak too: at most the anonymous peak
    peak_rss, peak_anonymous = peak_rss_gib(), anonymous.stop()
    if blocked:
        import gin  # noqa: PLC0415

        with gin.unlock_config():
            gin.bind_parameter("Generator.attention_block_size", None)
            gin.bind_parameter("Discriminator.attention_block_size", None)
        counts = traced_flops(compiled_model())
    model_counts = counts
    if FLAGS.fused_resampling:
        # The model's FLOPs, as the reference counts them: the train step traced (never run) with the plain
        # compositions (upsample then convolve, convolve then pool), which --nofused_resampling already runs.
        trainer.apply_hardware_policy(tf.distribute.get_strategy(), FLAGS.filter_gradient, fused_resampling=False)
        model_counts = traced_flops(compiled_model())
    flops = sum(counts.values())
    matmul_conv = matmul_conv_flops(model_counts)
    executed = matmul_conv_flops(counts)
    g_params = count_parameters(model.generator.trainable_weights)
    d_params = count_parameters(model.discriminator.trainable_weights)
    figures = {
        "gin_files": FLAGS.gin_file, "resolution": resolution, "global_batch": batch, "num_classes": num_classes,
        "g_params": g_params, "d_params": d_params, "xla": FLAGS.xla, "mixed_precision": precision,
        "attention_block_size": [model.generator.attention_block_size, model.discriminator.attention_block_size], "threads": FLAGS.threads,
        "separate_d_calls": FLAGS.separate_d_calls,
        "ms_per_iteration": 1000 * seconds, "images_per_second": batch / seconds,
        "fused_resampling": FLAGS.fused_resampling,
        "gflop_per_iteration": matmul_conv / 1e9, "gflop_per_second": matmul_conv / 1e9 / seconds,
        "gflop_executed_per_iteration": executed / 1e9, "gflop_executed_per_second": executed / 1e9 / seconds,
        "gflop_per_iteration_all_ops": flops / 1e9,
        "gflop_by_op": {k: v / 1e9 for k, v in sorted(counts.items(), key=lambda kv: -kv[1])},
        "peak_host_rss_gib": peak_rss, "peak_host_anonymous_gib": peak_anonymous, "memory_stages": stages,
        "release_start_up_pages": FLAGS.release_start_up_pages,
        "iterations_timed": FLAGS.steps,
        # the state TensorFlow runs with ("1" / "0", as the variable), not the variable: they differ when
        # TensorFlow started before set_onednn
        "onednn": "1" if trainer.onednn_enabled() else "0", "onednn_source": onednn_source,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "filter_gradient": FLAGS.filter_gradient,
    }
    if tf.config.list_physical_devices("GPU"):
        figures["peak_device_memory_gib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 30
    if FLAGS.measure_peak:
        figures["matmul_gflop_per_second"] = lab_machine.matmul_rate()
        figures["fraction_of_matmul_rate"] = figures["gflop_per_second"] / figures["matmul_gflop_per_second"]
        if precision == "mixed_bfloat16":  # its own ceiling: the matmul in the precision the step computes in
            figures["matmul_bfloat16_gflop_per_second"] = lab_machine.matmul_rate(dtype="bfloat16")
    print_figures(figures)
    if FLAGS.json:
        records.write(FLAGS.json, figures)
        print(f"Wrote {FLAGS.json}")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/bench_train.py", main, __doc__)
