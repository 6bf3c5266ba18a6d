"""Requests for the exported generator under TF Serving, over REST and gRPC: a client needs numpy, and
for gRPC tensorflow-serving-api and grpcio (TensorFlow for `make_tensor_proto`), never sagan_tf.

    import serving_client as client
    inputs = client.sample_inputs(seed=7, count=4, labels=[1, 1, 2, 3], truncation=0.5)
    # REST (port 8501): POST the JSON body
    body = client.rest_body("sample", inputs)
    response = requests.post(client.rest_url("localhost", "sagan"), json=body).json()
    images = client.parse_rest_response(response)["images"]            # uint8 [4, H, W, 3]
    # gRPC (port 8500)
    request = client.grpc_request("sagan", "sample", inputs)
    response = client.grpc_predict("localhost:8500", request)
    images = tf.make_ndarray(response.outputs["images"])

The inputs carry the signatures' dtypes (docs/serving.md lists them): `serving_default` takes z float32
[N, dim_z] and labels int32 [N] (conditional models), `sample` and `sample_png` a seed int64, a count
int32, labels int32 [count] or [] (drawn from the seed) and a truncation float32 (0: none).
"""

import base64

import numpy as np


def serving_default_inputs(z, labels=None):
    """The inputs of `serving_default`: z float32 [N, dim_z] and, for a conditional model, labels int32 [N]."""
    inputs = {"z": np.asarray(z, np.float32)}
    if labels is not None:
        inputs["labels"] = np.asarray(labels, np.int32)
    return inputs


def sample_inputs(seed, count, labels=(), truncation=0.0):
    """The inputs of `sample` and `sample_png`: `count` images drawn from `seed`; `labels` one per image,
    or empty to draw them from the seed; `truncation` > 0 truncates z to [-truncation, truncation]."""
    return {"seed": np.array(seed, np.int64), "count": np.array(count, np.int32),
            "labels": np.asarray(labels, np.int32).reshape([-1]), "truncation": np.array(truncation, np.float32)}


def rest_url(host, model_name, version=None, port=8501):
    """TF Serving's REST predict URL; without `version`, the newest version the server has loaded."""
    version_part = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{port}/v1/models/{model_name}{version_part}:predict"


def rest_body(signature_name, inputs):
    """The JSON body (a dict for `json.dumps`) of a REST predict request in the columnar "inputs" form,
    which carries whole tensors, scalars included (the row form "instances" cannot send `sample`'s
    scalar seed and count)."""
    return {"signature_name": signature_name, "inputs": {key: np.asarray(value).tolist() for key, value in inputs.items()}}


def parse_rest_response(response):
    """The outputs of a REST predict response (columnar "outputs"; a one-output response may hold the
    tensor itself) as numpy arrays; `png_bytes` (`{"b64": ...}` entries) as a list of bytes."""
    outputs = response["outputs"]
    if not isinstance(outputs, dict):
        outputs = {"output": outputs}
    parsed = {}
    for key, value in outputs.items():
        if key.endswith("_bytes"):
            parsed[key] = [base64.b64decode(item["b64"]) for item in value]
        else:
            parsed[key] = np.asarray(value, np.uint8 if key == "images" else None)
    return parsed


def grpc_request(model_name, signature_name, inputs, version=None):
    """A `PredictRequest` for TF Serving's gRPC API (PredictionService.Predict)."""
    import tensorflow as tf  # noqa: PLC0415
    from tensorflow_serving.apis import predict_pb2  # noqa: PLC0415

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def grpc_predict(target, request, timeout=30.0):
    """Sends `request` to the server at `target` ("host:8500"); returns the `PredictResponse`."""
    import grpc  # noqa: PLC0415
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: PLC0415

    with grpc.insecure_channel(target) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
