"""Serving latency of an exported generator, loaded as TF Serving loads it.

    .venv/bin/python tools/bench_serving.py --saved_model=export/sagan/3500 [--batch_sizes=1,8,64]
        [--repeats=50] [--noreplay_warmup] [--json=results/bench_serving/<machine>.json] [--markdown=...md]

In this fresh process: loads the SavedModel with the `serve` tag into a session (TF Serving's
LoadSavedModel path, not sagan_tf), replays `assets.extra/tf_serving_warmup_requests` as the server does
before it reports the version available (unless `--noreplay_warmup`), then calls `serving_default` and
`sample` at each batch size through the signatures' tensor names: the first call after load, then
`--repeats` calls for p50 / p99 latency and images/s (batch / p50). The requests are the ones
tools/serving_client.py builds; the model is timed on the whole machine, as a server runs it.
"""

import json
import os
import time

from absl import flags

from lab import checks, records
from lab import machine as lab_machine
from lab.timing import time_calls
from sagan_tf import commands, logs  # (no TensorFlow)

FLAGS = flags.FLAGS
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
DESCRIPTION = os.path.join("assets", "sagan_tf_export.json")
SIGNATURES = ("serving_default", "sample")


def define_flags():
    flags.DEFINE_string("saved_model", None, "An export's version folder (<export_dir>/<version>).")
    flags.DEFINE_list("batch_sizes", ["1", "8", "64"], "Batch sizes to time, in this order.")
    flags.DEFINE_integer("repeats", 50, "Timed calls per signature and batch after the first.", lower_bound=2)
    flags.DEFINE_bool("replay_warmup", True, "Replay the export's warmup records after loading, as TF Serving does.")
    flags.DEFINE_string("json", None, "Also write the record to this JSON file.")
    flags.DEFINE_string("markdown", None, "Also write the table to this file.")


def check_flags():
    """The export's description and the batch sizes; raises UserError before TensorFlow starts."""
    fix = "pass an export's version folder, e.g. export/sagan/3500"
    checks.required("saved_model", FLAGS.saved_model, fix)
    sizes = checks.integers("batch_sizes", FLAGS.batch_sizes, "pass --batch_sizes such as 1,8,64")
    if not sizes or min(sizes) < 1:
        raise commands.UserError(f"--batch_sizes={','.join(FLAGS.batch_sizes)}: each must be at least 1",
                                 "pass --batch_sizes such as 1,8,64")
    for flag in ("json", "markdown"):
        if getattr(FLAGS, flag):
            checks.output_file(flag, getattr(FLAGS, flag), f"pass a .{'md' if flag == 'markdown' else flag} path")
    checks.folder("saved_model", FLAGS.saved_model, fix)
    for name in ("saved_model.pb", DESCRIPTION):
        if not os.path.isfile(os.path.join(FLAGS.saved_model, name)):
            raise commands.UserError(f"--saved_model {FLAGS.saved_model} holds no {name}",
                                     "pass a version folder written by python -m sagan_tf.export")
    with open(os.path.join(FLAGS.saved_model, DESCRIPTION)) as f:
        return json.load(f), sizes


class Server:
    """A SavedModel in a session, called by signature as TF Serving's Predict calls it."""

    def __init__(self, path):
        import tensorflow as tf  # noqa: PLC0415

        start = time.perf_counter()
        self.session = tf.compat.v1.Session(graph=tf.Graph())
        meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
        self.signatures = meta_graph.signature_def
        self._callables = {}
        self.load_seconds = time.perf_counter() - start

    def predict(self, signature_name, inputs):
        """{output name: numpy} of `signature_name` on {input name: numpy}."""
        keys = tuple(sorted(inputs))
        if (signature_name, keys) not in self._callables:
            signature = self.signatures[signature_name]
            outputs = sorted(signature.outputs)
            run = self.session.make_callable([signature.outputs[k].name for k in outputs],
                                              [signature.inputs[k].name for k in keys])
            self._callables[signature_name, keys] = (outputs, run)
        outputs, run = self._callables[signature_name, keys]
        return dict(zip(outputs, run(*(inputs[k] for k in keys))))

    def replay_warmup(self, path):
        """Runs the warmup records' requests; returns (number of requests, seconds)."""
        import tensorflow as tf  # noqa: PLC0415
        from tensorflow_serving.apis import prediction_log_pb2  # noqa: PLC0415

        file = os.path.join(path, WARMUP_FILE)
        if not os.path.isfile(file):
            return 0, 0.0
        requests = [prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request
                    for r in tf.data.TFRecordDataset(file)]
        start = time.perf_counter()
        for request in requests:
            self.predict(request.model_spec.signature_name,
                         {key: tf.make_ndarray(value) for key, value in request.inputs.items()})
        return len(requests), time.perf_counter() - start


def request_inputs(signature_name, batch_size, description):
    """What a client sends (tools/serving_client.py's builders)."""
    import numpy as np  # noqa: PLC0415

    import serving_client  # noqa: PLC0415

    if signature_name == "sample":
        return serving_client.sample_inputs(seed=batch_size + 100, count=batch_size)
    z = np.random.RandomState(batch_size + 100).standard_normal((batch_size, description["dim_z"]))
    labels = np.arange(batch_size) % description["num_classes"] if description["num_classes"] else None
    return serving_client.serving_default_inputs(z, labels)


def measure(server, description, batch_sizes, repeats, warmed):
    """One row per signature and batch size: the first call's and the later calls' latencies."""
    import numpy as np  # noqa: PLC0415

    rows = []
    for signature_name in SIGNATURES:
        for batch_size in batch_sizes:
            inputs = request_inputs(signature_name, batch_size, description)
            last = {}

            def call(signature_name=signature_name, inputs=inputs, last=last):
                last["images"] = server.predict(signature_name, inputs)["images"]

            seconds = time_calls(call, repeats + 1, warmup=0)  # the first call is the first after load
            images = last["images"]
            assert images.shape[0] == batch_size and images.dtype == np.uint8, (images.shape, images.dtype)
            rows.append({
                "signature": signature_name, "batch_size": batch_size, "first_call_ms": 1e3 * seconds[0],
                "p50_ms": 1e3 * float(np.percentile(seconds[1:], 50)),
                "p99_ms": 1e3 * float(np.percentile(seconds[1:], 99)),
                "images_per_second": batch_size / float(np.percentile(seconds[1:], 50)),
                "warmed": f"{signature_name} x{batch_size}" in warmed,
            })
    return rows


def markdown(report):
    """The record as a sentence of context and a table."""
    model = report["model"]
    warmup = (f"replayed its {report['warmup_requests']} warmup requests in {report['warmup_seconds']:.2f} s"
              if report["replay_warmup"] else "replayed no warmup requests")
    lines = [
        f"Machine: {report['machine']}; TensorFlow {report['tensorflow']}. Generator {model['resolution']}x"
        f"{model['resolution']}, dim_z {model['dim_z']}, {model['num_classes']} classes"
        + (f", width {model['base_channels']}, {model['generator_parameters']:,} parameters"
           if model.get("generator_parameters") else "")
        + f" ({'EMA generator' if model.get('ema') else 'generator'} at step {model['step']}). "
        f"Loaded with the serve tag in {report['load_seconds']:.2f} s and {warmup}; then the first call of "
        f"each signature and batch, and p50 / p99 of {report['repeats']} more calls. Load average "
        f"{report['load_average_1min'][0]:.1f} before, {report['load_average_1min'][1]:.1f} after "
        f"({report['cpu']['cores']} cores).",
        "",
        "| signature | batch | warmed at load | first call (ms) | p50 (ms) | p99 (ms) | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(f"| `{row['signature']}` | {row['batch_size']} | {'yes' if row['warmed'] else 'no'} | "
                     f"{row['first_call_ms']:.1f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                     f"{row['images_per_second']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    description, batch_sizes = check_flags()
    machine = lab_machine.description()
    load_before = os.getloadavg()
    logs.quiet_libraries()
    import tensorflow as tf

    path = os.path.abspath(FLAGS.saved_model)
    server = Server(path)
    warmup_requests, warmup_seconds = server.replay_warmup(path) if FLAGS.replay_warmup else (0, 0.0)
    warmed = description.get("warmup_requests", []) if FLAGS.replay_warmup and warmup_requests else []
    rows = measure(server, description, batch_sizes, FLAGS.repeats, warmed)
    report = records.record({
        "saved_model": FLAGS.saved_model, "tensorflow": tf.__version__,
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "model": {key: description.get(key) for key in ("step", "ema", "resolution", "dim_z", "num_classes",
                                                        "base_channels", "generator_parameters")},
        "load_seconds": server.load_seconds, "replay_warmup": FLAGS.replay_warmup,
        "warmup_requests": warmup_requests, "warmup_seconds": warmup_seconds, "repeats": FLAGS.repeats,
        "rows": rows,
        "cpu": lab_machine.describe(),
        "load_average_1min": [load_before[0], os.getloadavg()[0]],  # before and after: was the machine shared?
    }, machine=machine)
    table = markdown(report)
    print(table)
    written = []
    if FLAGS.json:
        records.write(FLAGS.json, report)
        written.append(FLAGS.json)
    if FLAGS.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.markdown)), exist_ok=True)
        with open(FLAGS.markdown, "w") as f:
            f.write(table)
        written.append(FLAGS.markdown)
    print(f"Wrote {' and '.join(written)}" if written else f"Measured {FLAGS.saved_model} (no --json or --markdown)")


if __name__ == "__main__":
    define_flags()
    commands.run("tools/bench_serving.py", main, __doc__)
