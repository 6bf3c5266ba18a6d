"""TF Serving's warmup records, replayed where sagan_tf cannot be imported, and the client's requests
(tools/serving_client.py) fed to the exported signatures."""

import base64
import json
import os
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import serving

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))  # the client, as `python tools/x.py` sees it

import serving_client  # noqa: E402

# Runs under `python -I -S` with sys.path = the standard library and site-packages, without site's .pth
# files: the editable install of sagan_tf (a .pth finder) is not there, so sagan_tf cannot be imported.
REPLAY = r'''
import json, sys
sys.path.append(sys.argv[1])
try:
    import sagan_tf  # noqa: F401
    importable = True
except ImportError:
    importable = False
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

path = sys.argv[2]
signatures = tf.saved_model.load(path, tags=["serve"]).signatures
replayed = []
for record in tf.data.TFRecordDataset(path + "/assets.extra/tf_serving_warmup_requests"):
    request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
    inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
    outputs = signatures[request.model_spec.signature_name](**inputs)
    replayed.append({"model": request.model_spec.name, "signature": request.model_spec.signature_name,
                     "outputs": {key: [list(value.shape), value.dtype.name] for key, value in outputs.items()}})
print(json.dumps({"sagan_tf_importable": importable, "sagan_tf_loaded": "sagan_tf" in sys.modules,
                  "replayed": replayed}))
'''


@pytest.fixture(scope="module")
def exported(tiny_export):
    """The suite's CLI export of the tiny run: `<shared>/sagan/4` (model name "sagan")."""
    return str(tiny_export / "4")


def _warmup_logs(path):
    _, prediction_log_pb2 = serving.serving_apis()
    records = tf.data.TFRecordDataset(os.path.join(path, serving.WARMUP_FILE))
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in records]


def test_warmup_records_name_the_model_the_signatures_and_the_batch_sizes(exported):
    requests = [log.predict_log.request for log in _warmup_logs(exported)]
    assert [(r.model_spec.name, r.model_spec.signature_name) for r in requests] == [
        ("sagan", "serving_default"), ("sagan", "serving_default"), ("sagan", "sample"), ("sagan", "sample"),
        ("sagan", "sample_png"), ("sagan", "sample_png")]
    z = [tf.make_ndarray(r.inputs["z"]) for r in requests[:2]]
    assert [a.shape for a in z] == [(1, 128), (8, 128)] and z[1].dtype == np.float32
    assert tf.make_ndarray(requests[1].inputs["labels"]).tolist() == list(range(8))
    assert [int(tf.make_ndarray(r.inputs["count"])) for r in requests[2:]] == [1, 8, 1, 8]
    assert tf.make_ndarray(requests[2].inputs["seed"]).dtype == np.int64
    description = json.loads(open(os.path.join(exported, "assets", "sagan_tf_export.json")).read())
    assert description["warmup_requests"] == ["serving_default x1", "serving_default x8", "sample x1", "sample x8",
                                              "sample_png x1", "sample_png x8"]


def test_warmup_records_replay_through_the_signatures_without_sagan_tf(exported, tmp_path):
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run([sys.executable, "-I", "-S", "-c", REPLAY, site_packages, exported],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["sagan_tf_importable"] is False and report["sagan_tf_loaded"] is False
    shapes = [(r["signature"], r["outputs"]["images"][0]) for r in report["replayed"][:4]]
    assert shapes == [("serving_default", [1, 32, 32, 3]), ("serving_default", [8, 32, 32, 3]),
                      ("sample", [1, 32, 32, 3]), ("sample", [8, 32, 32, 3])]
    assert all(r["outputs"]["images"][1] == "uint8" for r in report["replayed"][:4])
    assert [r["outputs"] for r in report["replayed"][4:]] == [{"png_bytes": [[1], "string"]},
                                                               {"png_bytes": [[8], "string"]}]
    sample = report["replayed"][3]["outputs"]
    assert sample["z"] == [[8, 128], "float32"] and sample["labels"] == [[8], "int32"]


def test_export_without_warmup_writes_no_assets_extra(tmp_path):
    from sagan_tf.models import Generator

    generator = Generator(resolution=32, num_classes=0, base_channels=4, attention_resolutions=(16,))
    generator.build()
    path = serving.export_generator(generator, 0, str(tmp_path), 1, warmup_batch_sizes=())
    assert not os.path.exists(os.path.join(path, "assets.extra"))
    with pytest.raises(ValueError, match="No warmup inputs for a signature named 'sample_jpeg'"):
        serving.warmup_inputs("sample_jpeg", 1, 128, 0)


def _feed(signature, inputs):
    """Calls a loaded signature with numpy inputs cast to its input dtypes, as the server does."""
    specs = signature.structured_input_signature[1]
    return {key: value.numpy() for key, value in
            signature(**{key: tf.constant(value, specs[key].dtype) for key, value in inputs.items()}).items()}


def test_client_requests_give_the_same_images_over_rest_and_grpc(exported):
    signatures = tf.saved_model.load(exported, tags=["serve"]).signatures
    inputs = serving_client.sample_inputs(seed=3, count=2, labels=[4, 7], truncation=0.5)
    body = json.loads(json.dumps(serving_client.rest_body("sample", inputs)))  # as sent over the wire
    assert body["signature_name"] == "sample" and body["inputs"]["labels"] == [4, 7]
    over_rest = _feed(signatures[body["signature_name"]], {k: np.array(v) for k, v in body["inputs"].items()})
    request = serving_client.grpc_request("sagan", "sample", inputs, version=4)
    assert request.model_spec.name == "sagan" and request.model_spec.version.value == 4
    over_grpc = _feed(signatures[request.model_spec.signature_name],
                      {key: tf.make_ndarray(value) for key, value in request.inputs.items()})
    assert over_rest["images"].shape == (2, 32, 32, 3) and over_rest["images"].dtype == np.uint8
    np.testing.assert_array_equal(over_rest["images"], over_grpc["images"])
    np.testing.assert_array_equal(over_grpc["labels"], [4, 7])
    assert serving_client.rest_url("localhost", "sagan", 4) == "http://localhost:8501/v1/models/sagan/versions/4:predict"


def test_client_serving_default_and_png_responses(exported):
    signatures = tf.saved_model.load(exported, tags=["serve"]).signatures
    z = np.random.RandomState(0).standard_normal((3, 128))
    inputs = serving_client.serving_default_inputs(z, labels=[0, 1, 2])
    assert inputs["z"].dtype == np.float32 and inputs["labels"].dtype == np.int32
    request = serving_client.grpc_request("sagan", "serving_default", inputs)
    images = _feed(signatures["serving_default"], {k: tf.make_ndarray(v) for k, v in request.inputs.items()})["images"]
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    # A REST response of sample_png, as TF Serving writes it (outputs named *_bytes come base64-encoded).
    png = _feed(signatures["sample_png"], serving_client.sample_inputs(seed=1, count=2))["png_bytes"]
    response = {"outputs": {"png_bytes": [{"b64": base64.b64encode(p).decode()} for p in png]}}
    decoded = serving_client.parse_rest_response(json.loads(json.dumps(response)))
    assert decoded["png_bytes"] == list(png) and decoded["png_bytes"][0][:4] == b"\x89PNG"


def test_bench_serving_records_every_signature_and_batch(exported, tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "tools/bench_serving.py", f"--saved_model={exported}", "--repeats=2",
                             "--batch_sizes=1,3", f"--json={output}", f"--markdown={tmp_path / 'bench.md'}"],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"Wrote {output} and {tmp_path / 'bench.md'}"
    record = json.loads(output.read_text())
    assert {"command", "commit", "machine", "cpu"} <= set(record) and record["warmup_requests"] == 6
    assert [(r["signature"], r["batch_size"], r["warmed"]) for r in record["rows"]] == [
        ("serving_default", 1, True), ("serving_default", 3, False), ("sample", 1, True), ("sample", 3, False)]
    assert all(0 < r["p50_ms"] <= r["p99_ms"] and r["images_per_second"] > 0 for r in record["rows"])
    table = (tmp_path / "bench.md").read_text()
    assert "| `sample` | 3 | no |" in table
    # The network is named: its width and parameter count, from the export's description.
    assert record["model"]["base_channels"] == 4 and record["model"]["generator_parameters"] > 0
    assert f", width 4, {record['model']['generator_parameters']:,} parameters (EMA generator at step 4)." in table
