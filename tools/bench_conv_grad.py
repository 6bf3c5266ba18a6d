"""Times the parts of one convolution's training work: forward, input gradient, and the filter gradient
both ways (TensorFlow's kernel, i.e. oneDNN's, and `sagan_tf.layers.conv_grad`'s matrix products), and
says which one the "auto" rule picks for that shape on this machine and whether that was the faster.

    .venv/bin/python tools/bench_conv_grad.py [--shapes="8,128,64,64,3;32,16,256,256,3"] [--repeats=7] \
        [--markdown=results/bench_conv_grad/<machine>.md] [--json=...]

A shape is batch, height (= width), input channels, output channels, kernel size of a stride-1 "same"
convolution; the default list holds the 3x3 and 1x1 convolutions of SAGAN's configs (Fashion-MNIST ch 16,
CIFAR-10 / ImageNet ch 64 at their benchmark batches). Each figure is the median of --repeats calls of a
traced function after one untimed call, in GFLOP/s of the convolution's 2 N H W C_in C_out k^2 FLOPs.
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
])


def define_flags():
    flags.DEFINE_string("shapes", DEFAULT_SHAPES, "Semicolon-separated batch,height,c_in,c_out,kernel.")
    flags.DEFINE_integer("repeats", 7, "Timed calls per measurement (median).", lower_bound=1)
    flags.DEFINE_string("markdown", None, "Also write the table to this file.")
    flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
    flags.DEFINE_enum("onednn", "auto", ["auto", "on", "off"], machine.ONEDNN_HELP)


def parse_shapes(text):
    """[(batch, height, c_in, c_out, kernel)] of --shapes; raises UserError on a malformed shape."""
    fix = "pass --shapes such as \"8,128,64,64,3;32,16,256,256,3\""
    shapes = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        values = item.split(",")
        if len(values) != 5 or not all(v.strip().isdigit() and int(v) > 0 for v in values):
            raise commands.UserError(f"--shapes: a shape is five positive integers batch,height,c_in,c_out,kernel. "
                                     f"Received: {item!r}", fix)
        batch, height, c_in, c_out, kernel = (int(v) for v in values)
        if kernel % 2 == 0:
            raise commands.UserError(f"--shapes: the kernel size must be odd (a \"same\" convolution). "
                                     f"Received: {item!r}", fix)
        shapes.append((batch, height, c_in, c_out, kernel))
    if not shapes:
        raise commands.UserError("--shapes holds no shape", fix)
    return shapes


def measure(shape, repeats):
    import tensorflow as tf  # noqa: PLC0415

    from sagan_tf import trainer  # noqa: PLC0415
    from sagan_tf.layers import conv_grad  # noqa: PLC0415

    batch, height, c_in, c_out, kernel = shape
    x = tf.random.normal([batch, height, height, c_in])
    w = tf.random.normal([kernel, kernel, c_in, c_out])
    dy = tf.random.normal([batch, height, height, c_out])
    functions = {
        "forward": lambda: tf.nn.conv2d(x, w, 1, "SAME"),
        "input_gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"),
        "filter_gradient_onednn": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"),
        "filter_gradient_matmul": lambda: conv_grad.matmul_filter_gradient(x, dy, kernel),
    }
    gflop = 2 * batch * height * height * c_in * c_out * kernel * kernel / 1e9
    row = {"shape": list(shape), "gflop": gflop}
    for name, function in functions.items():
        compiled = tf.function(function)
        seconds = median_seconds(lambda: compiled().numpy(), repeats)  # one warm-up call: tracing
        row[name] = {"ms": 1000 * seconds, "gflop_per_second": gflop / seconds}
    rules = machine.network_settings(trainer.detect_hardware()).filter_gradient  # what "auto" takes here
    row["auto_picks"] = "matmul" if conv_grad.use_matmul_filter_gradient(rules, height, height, c_in, c_out, kernel) else "onednn"
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
        cell = lambda key: f"{row[key]['ms']:.1f} ({row[key]['gflop_per_second']:.0f})"  # noqa: E731
        lines.append(f"| {n}, {h}x{h}, {c_in} -> {c_out}, {k}x{k} | {row['gflop']:.2f} | {cell('forward')} | "
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
    described = lab_machine.description(isa_limit=True)
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
