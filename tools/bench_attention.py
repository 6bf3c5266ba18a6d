"""Full vs blocked self-attention at a large feature map: time, peak memory, largest batch that fits.

    python tools/bench_attention.py [--feature_size=64] [--channels=128] [--style=paper] \
        [--batch=32] [--block_size=512] [--memory_limit_gib=16] [--max_batch=1024]

One `SelfAttention` layer (sagan_tf.layers) on [B, S, S, C] inputs, forward and backward (gradients
of the input and of every weight), as in a training step. For each path (full: the whole
[B, N, N_key] attention map at once; blocked: `query_block_size` queries at a time, recomputed in
the backward pass) it prints:

- ms per forward+backward and the process's peak RSS at `--batch` (equal batch for both paths);
- the largest batch whose peak RSS stays under `--memory_limit_gib`: doubling from `--batch`, then
  bisection to `--precision` (one timed iteration per trial). Each trial is its own process; the parent samples its RSS every 10 ms
  and stops it at the limit, so no trial can take the machine's memory.

`--style=paper` keeps all N = S^2 keys (the N x N map of the paper's equations); `official` pools
keys and values 2x2 (N x N/4) as the released code does.
"""

import json
import os
import subprocess
import sys
import time

from absl import flags

from lab import checks, records
from lab.memory import peak_rss_gib
from lab.timing import median_seconds
from sagan_tf import commands  # (no TensorFlow)

flags.DEFINE_integer("feature_size", 64, "Feature-map side S (N = S^2 positions).", lower_bound=2)
flags.DEFINE_integer("channels", 128, "Channels C of the feature map (the 128x128 G has 128 at 64x64).",
                     lower_bound=8)
flags.DEFINE_enum("style", "paper", ["paper", "official"], "Attention style (keys unpooled or pooled 2x2).")
flags.DEFINE_integer("batch", 32, "Batch of the equal-batch comparison, and the search's start.", lower_bound=1)
flags.DEFINE_integer("block_size", 512, "Query block size of the blocked path.", lower_bound=1)
flags.DEFINE_float("memory_limit_gib", 16.0, "Peak RSS budget of the largest-batch search.", lower_bound=0.01)
flags.DEFINE_integer("max_batch", 1024, "Stop the doubling here.", lower_bound=1)
flags.DEFINE_integer("precision", 16, "Bisection stops when the fit/no-fit bracket is this narrow.",
                     lower_bound=1)
flags.DEFINE_integer("steps", 3, "Timed iterations (median) after one warm-up.", lower_bound=1)
flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
flags.DEFINE_string("trial", None, "Internal: run one trial, 'full:B' or 'blocked:B', and print its JSON.")
FLAGS = flags.FLAGS


def trial(path, batch, style, feature_size, channels, block_size, steps):
    """In this process: times forward+backward of one attention layer; returns the figures."""
    import tensorflow as tf

    from sagan_tf.layers.attention import SelfAttention, attention_style_kwargs

    layer = SelfAttention(**attention_style_kwargs(style), query_block_size=block_size if path == "blocked" else None)
    x = tf.random.normal([batch, feature_size, feature_size, channels])
    layer.build(x.shape)
    layer.gamma.assign(0.5)  # a live residual branch, as after some training

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, training=True)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    seconds = median_seconds(lambda: [g.numpy() for g in step(x)], steps)  # one warm-up call: tracing
    return {"path": path, "batch": batch, "ms": 1000 * seconds,
            "peak_rss_gib": peak_rss_gib()}


def _rss_gib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


def run_trial(path, batch, limit_gib, steps=None):
    """Runs one trial in a child process under the RSS limit; returns its figures, or None if over."""
    cmd = [sys.executable, os.path.abspath(__file__), f"--trial={path}:{batch}", f"--style={FLAGS.style}",
           f"--feature_size={FLAGS.feature_size}", f"--channels={FLAGS.channels}",
           f"--block_size={FLAGS.block_size}", f"--steps={steps or FLAGS.steps}"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, _rss_gib(child.pid))
        if peak > limit_gib:
            child.kill()
            child.wait()
            print(f"  {path:<8} batch {batch:>5}: over {limit_gib:g} GiB (stopped at {peak:.1f} GiB)", flush=True)
            return None
        time.sleep(0.01)
    output = child.stdout.read().strip().splitlines()
    if child.returncode != 0 or not output:
        print(f"  {path:<8} batch {batch:>5}: failed (exit {child.returncode})", flush=True)
        return None
    figures = json.loads(output[-1])
    print(f"  {path:<8} batch {batch:>5}: {figures['ms']:,.0f} ms, peak RSS {figures['peak_rss_gib']:.2f} GiB", flush=True)
    return figures


def largest_batch(path, limit_gib):
    """The largest batch under the limit (doubling, then bisection); returns (batch, figures)."""
    fits, fails, best = None, None, None
    batch = FLAGS.batch
    while batch <= FLAGS.max_batch:
        figures = run_trial(path, batch, limit_gib, steps=1)
        if figures is None:
            fails = batch
            break
        fits, best = batch, figures
        batch *= 2
    if fits is None:
        return None, None
    while fails is not None and fails - fits > FLAGS.precision:
        middle = (fits + fails) // 2
        figures = run_trial(path, middle, limit_gib, steps=1)
        if figures is None:
            fails = middle
        else:
            fits, best = middle, figures
    return fits, {**best, "bracket": [fits, fails]}


def parse_trial(text):
    """('full' or 'blocked', batch) of --trial=PATH:BATCH."""
    path, _, batch = text.partition(":")
    if path not in ("full", "blocked") or not batch.isdigit() or int(batch) < 1:
        raise commands.UserError(f"--trial={text} is not 'full:B' or 'blocked:B'",
                                 "leave --trial out: the tool passes it to its own trial processes")
    return path, int(batch)


def main(argv):
    del argv
    if FLAGS.trial:
        path, batch = parse_trial(FLAGS.trial)
        print(json.dumps(trial(path, batch, FLAGS.style, FLAGS.feature_size, FLAGS.channels,
                               FLAGS.block_size, FLAGS.steps)))
        return
    if FLAGS.json:
        checks.output_file("json", FLAGS.json, "pass a .json file path")
    if FLAGS.batch > FLAGS.max_batch:
        raise commands.UserError(f"--batch={FLAGS.batch} is above --max_batch={FLAGS.max_batch}",
                                 "pass a --batch at most --max_batch")
    n = FLAGS.feature_size ** 2
    keys = n if FLAGS.style == "paper" else n // 4
    print(f"SelfAttention {FLAGS.style}: S = {FLAGS.feature_size} (N = {n} queries, {keys} keys), C = "
          f"{FLAGS.channels}, blocked path: {FLAGS.block_size} queries per block; forward + backward")
    report = {"style": FLAGS.style, "feature_size": FLAGS.feature_size, "channels": FLAGS.channels,
              "block_size": FLAGS.block_size, "memory_limit_gib": FLAGS.memory_limit_gib}
    for path in ("full", "blocked"):
        print(f"{path}: equal batch {FLAGS.batch}")
        report[f"{path}_equal_batch"] = run_trial(path, FLAGS.batch, max(FLAGS.memory_limit_gib, 20.0))
    for path in ("full", "blocked"):
        print(f"{path}: largest batch under {FLAGS.memory_limit_gib:g} GiB")
        batch, figures = largest_batch(path, FLAGS.memory_limit_gib)
        report[f"{path}_largest_batch"] = batch
        report[f"{path}_at_largest_batch"] = figures
    print(json.dumps(report, indent=2))
    if FLAGS.json:
        records.write(FLAGS.json, report)
        print(f"Wrote {FLAGS.json}")


if __name__ == "__main__":
    commands.run("tools/bench_attention.py", main, __doc__)
