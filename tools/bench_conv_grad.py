"""Times the parts of one convolution's training work: forward, input gradient, and the filter gradient
both ways (TensorFlow's kernel, i.e. oneDNN's, and `sagan_tf.layers.conv_grad`'s matrix products), and
says which one the "auto" rule picks for that shape on this machine and whether that was the faster.

    .venv/bin/python tools/bench_conv_grad.py [--shapes="8,128,64,64,3;32,16,256,256,3"] [--repeats=7] \
        [--markdown=results/bench_conv_grad/<machine>.md] [--json=...]

A shape is batch, height (= width), input channels, output channels, kernel size of a stride-1 "same"
convolution, or `4s2` for the stride-2 4x4 convolutions of the fused resampling forms (height, input channels:
the high-resolution side; an upsampling form's filter gradient is that of the stride-2 convolution from its
output to its input, so a G block is listed with its output first). The default list holds the 3x3 and 1x1
convolutions of SAGAN's configs (Fashion-MNIST ch 16, CIFAR-10 / ImageNet ch 64 at their benchmark batches)
and the fused resampling convolutions of their D blocks and of two G blocks, ImageNet 64's 8 -> 16 and
ImageNet 128's 16 -> 32 (D's batch: real and fake together). Each figure is the median of --repeats calls
of a traced function after one untimed call, in GFLOP/s of the convolution's 2 N H W C_in C_out k^2 FLOPs
(H, W: the output's).
Run it with ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 machine to see the kernels of AVX2 CPUs (the rule then
follows the cap). oneDNN is switched on as the train command does (`--onednn`).
"""

import os

from absl import flags

from lab import checks, records
from lab import machine as lab_machine
from lab.timing import median_seconds
from sagan_tf import commands, logs, machine  # (no TensorFlow)

FLAGS = flags.FLAGS
DEFAULT_SHAPES = ";".join([
    "64,32,64,64,3", "64,16,64,64,3", "64,16,64,8,1",          # Fashion-MNIST ch 16
    "64,32,256,256,3", "64,16,256,256,3", "64,8,256,256,3",    # CIFAR-10 ch 64
    "32,64,128,128,3", "32,32,256,256,3", "32,8,1024,1024,3",  # ImageNet 64
    "8,128,64,64,3", "8,64,128,128,3", "8,64,128,16,1", "8,8,1024,1024,3", "8,4,1024,1024,3",  # ImageNet 128
    "128,32,64,64,4s2", "128,32,256,256,4s2", "128,16,256,256,4s2",  # fused: Fashion-MNIST, CIFAR-10 D
    "64,16,256,256,4s2", "64,8,512,512,4s2", "32,16,512,1024,4s2",  # ImageNet 64 D, G
    "16,64,128,128,4s2", "16,16,512,512,4s2", "16,8,1024,1024,4s2", "8,32,256,512,4s2",  # ImageNet 128 D, G
])
STRIDE2 = "4s2"  # the kernel field of a fused resampling form's stride-2 4x4 convolution


def define_flags():
    flags.DEFINE_string("shapes", DEFAULT_SHAPES, "Semicolon-separated batch,height,c_in,c_out,kernel (kernel: an odd "
                        f"size, or {STRIDE2} for a stride-2 4x4 convolution).")
    flags.DEFINE_integer("repeats", 7, "Timed calls per measurement (median).", lower_bound=1)
    flags.DEFINE_string("markdown", None, "Also write the table to this file.")
    flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
    flags.DEFINE_enum("onednn", "auto", ["auto", "on", "off"], machine.ONEDNN_HELP)


def parse_shapes(text):
    """[(batch, height, c_in, c_out, kernel)] of --shapes, kernel an odd int or "4s2"; raises UserError on a
    malformed shape."""
    fix = f"pass --shapes such as \"8,128,64,64,3;32,16,256,256,3;16,8,1024,1024,{STRIDE2}\""
    shapes = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        values = [v.strip() for v in item.split(",")]
        stride2 = len(values) == 5 and values[4] == STRIDE2
        if len(values) != 5 or not all(v.isdigit() and int(v) > 0 for v in values[:4 if stride2 else 5]):
            raise commands.UserError(f"--shapes: a shape is five positive integers batch,height,c_in,c_out,kernel "
                                     f"(kernel may be {STRIDE2}). Received: {item!r}", fix)
        batch, height, c_in, c_out = (int(v) for v in values[:4])
        kernel = STRIDE2 if stride2 else int(values[4])
        if not stride2 and kernel % 2 == 0:
            raise commands.UserError(f"--shapes: the kernel size must be odd (a \"same\" convolution) or {STRIDE2}. "
                                     f"Received: {item!r}", fix)
        if stride2 and height % 2:
            raise commands.UserError(f"--shapes: a {STRIDE2} shape needs an even height. Received: {item!r}", fix)
        shapes.append((batch, height, c_in, c_out, kernel))
    if not shapes:
        raise commands.UserError("--shapes holds no shape", fix)
    return shapes


def measure(shape, repeats):
    import tensorflow as tf  # noqa: PLC0415

    from sagan_tf import trainer  # noqa: PLC0415
    from sagan_tf.layers import conv_grad  # noqa: PLC0415

    batch, height, c_in, c_out, kernel = shape
    stride, size = (2, 4) if kernel == STRIDE2 else (1, kernel)
    x = tf.random.normal([batch, height, height, c_in])
    w = tf.random.normal([size, size, c_in, c_out])
    dy = tf.random.normal([batch, height // stride, height // stride, c_out])
    strides = [1, stride, stride, 1]
    functions = {
        "forward": lambda: tf.nn.conv2d(x, w, stride, "SAME"),
        "input_gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=strides, padding="SAME"),
        "filter_gradient_onednn": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=strides, padding="SAME"),
        "filter_gradient_matmul": (lambda: conv_grad.matmul_filter_gradient_stride2(x, dy)) if stride == 2 else (
            lambda: conv_grad.matmul_filter_gradient(x, dy, kernel)),
    }
    gflop = 2 * batch * (height // stride) ** 2 * c_in * c_out * size * size / 1e9
    row = {"shape": list(shape), "gflop": gflop}
    for name, function in functions.items():
        compiled = tf.function(function)
        seconds = median_seconds(lambda: compiled().numpy(), repeats)  # one warm-up call: tracing
        row[name] = {"ms": 1000 * seconds, "gflop_per_second": gflop / seconds}
    rules = machine.network_settings(trainer.detect_hardware()).filter_gradient  # what "auto" takes here
    picks = conv_grad.use_matmul_filter_gradient(rules, height, height, c_in, c_out, size, stride)
    row["auto_picks"] = "matmul" if picks else "onednn"
    faster = "matmul" if row["filter_gradient_matmul"]["ms"] < row["filter_gradient_onednn"]["ms"] else "onednn"
    row["faster"] = faster
    return row


def markdown(rows, description):
    lines = [f"Machine: {description}. Milliseconds (GFLOP/s), median of {FLAGS.repeats} calls; "
             "filter gradient by TensorFlow's kernel (oneDNN) and by conv_grad's matrix products; \"auto\" is the "
             "rule of sagan_tf.machine.network_settings on this machine.", "",
             "| batch, HxW, C_in -> C_out, k | GFLOP | forward | input gradient | filter gradient, oneDNN | "
             "filter gradient, matmul | auto picks | faster |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        n, h, c_in, c_out, k = row["shape"]
        kernel = "4x4/2" if k == STRIDE2 else f"{k}x{k}"
        cell = lambda key: f"{row[key]['ms']:.1f} ({row[key]['gflop_per_second']:.0f})"  # noqa: E731
        lines.append(f"| {n}, {h}x{h}, {c_in} -> {c_out}, {kernel} | {row['gflop']:.2f} | {cell('forward')} | "
                     f"{cell('input_gradient')} | {cell('filter_gradient_onednn')} | {cell('filter_gradient_matmul')} | "
                     f"{row['auto_picks']} | {row['faster']} |")
    total = {key: sum(row[key]["ms"] for row in rows) for key in ("filter_gradient_onednn", "filter_gradient_matmul")}
    auto = sum(row[f"filter_gradient_{row['auto_picks']}"]["ms"] for row in rows)
    lines += ["", f"Filter gradients of all shapes: oneDNN {total['filter_gradient_onednn']:.0f} ms, matmul "
              f"{total['filter_gradient_matmul']:.0f} ms, auto {auto:.0f} ms."]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    shapes = parse_shapes(FLAGS.shapes)
    for flag in ("markdown", "json"):
        if FLAGS[flag].value:
            checks.output_file(flag, FLAGS[flag].value, f"pass a .{'md' if flag == 'markdown' else 'json'} file path")
    machine.set_onednn(FLAGS.onednn)
    logs.quiet_libraries()
    rows = []
    # The matmul rate tells apart machines of one description (AVX-512 kernels of half or full width).
    described = (f"{lab_machine.description(isa_limit=True)}; float32 4096^3 matmul "
                 f"{lab_machine.matmul_rate():.0f} GFLOP/s")
    for shape in shapes:
        rows.append(measure(shape, FLAGS.repeats))
        print(markdown(rows[-1:], described).splitlines()[-3], flush=True)
    table = markdown(rows, described)
    print(table)
    if FLAGS.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.markdown)), exist_ok=True)
        with open(FLAGS.markdown, "w") as f:
            f.write(table)
    if FLAGS.json:
        records.write(FLAGS.json, {"rows": rows}, machine=described)
    written = [path for path in (FLAGS.markdown, FLAGS.json) if path]
    if written:
        print(f"Wrote {' and '.join(written)}")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/bench_conv_grad.py", main, __doc__)
