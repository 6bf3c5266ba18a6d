"""Export for TF Serving: the SavedModel's signatures, loaded where sagan_tf cannot be imported."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sagan_tf import restore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a fresh interpreter in which importing sagan_tf is impossible.
CLIENT = r'''
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sagan_tf":
            raise ImportError("sagan_tf must not be needed to load the export")
sys.meta_path.insert(0, Block())
import json
import numpy as np
import tensorflow as tf

path, out = sys.argv[1], sys.argv[2]
model = tf.saved_model.load(path)
serve, sample, sample_png = (model.signatures[k] for k in ("serving_default", "sample", "sample_png"))
z = np.random.RandomState(0).randn(3, 128).astype(np.float32)
labels = np.array([0, 4, 9], np.int32)
images = serve(z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()
args = dict(seed=tf.constant(7, tf.int64), count=tf.constant(4), labels=tf.constant([1, 1, 2, 3], tf.int32),
            truncation=tf.constant(0.5))
first, second = sample(**args), sample(**args)
other = sample(**{**args, "seed": tf.constant(8, tf.int64)})
random_labels = sample(**{**args, "labels": tf.constant([], tf.int32), "truncation": tf.constant(0.0)})
png = sample_png(**args)["png_bytes"].numpy()
errors = {}
bad_requests = {
    "z_width": lambda: serve(z=tf.zeros([2, 5]), labels=tf.constant([1, 2])),
    "label_range": lambda: serve(z=tf.constant(z), labels=tf.constant([0, 10, 1])),
    "label_count": lambda: serve(z=tf.constant(z), labels=tf.constant([0, 1])),
    "negative_count": lambda: sample(**{**args, "count": tf.constant(-1)}),
    "sample_labels": lambda: sample(**{**args, "labels": tf.constant([0, 1, 2, 99])}),
}
for name, call in bad_requests.items():
    try:
        call()
        errors[name] = "no error"
    except tf.errors.InvalidArgumentError as error:
        errors[name] = error.message
np.savez(out, z=z, labels=labels, images=images, first=first["images"].numpy(), second=second["images"].numpy(),
         other=other["images"].numpy(), first_z=first["z"].numpy(), first_labels=first["labels"].numpy(),
         random_labels=random_labels["labels"].numpy(), png0=np.frombuffer(png[0], np.uint8), num_png=len(png))
print(json.dumps({"errors": errors, "imported_sagan_tf": any(m.startswith("sagan_tf") for m in sys.modules)}))
'''


def _run(*cmd, timeout=300):
    return subprocess.run(list(cmd), capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def exported(tiny_export):
    return tiny_export  # the suite's one CLI export of the tiny run


def test_export_layout_and_cli(exported, tiny_run):
    assert os.listdir(exported) == ["4"]  # the version is the checkpoint's step; no temporary folder left
    version = exported / "4"
    assert {"saved_model.pb", "variables"} <= set(os.listdir(version))
    description = json.loads((version / "assets" / "sagan_tf_export.json").read_text())
    assert description["ema"] is True and description["num_classes"] == 10 and description["dim_z"] == 128
    assert (version / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0  # TF Serving's warmup
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = _run(cli, "show", "--dir", str(version), "--all")
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("signature_def['serving_default']", "signature_def['sample']", "signature_def['sample_png']",
                 "outputs['images'] tensor_info:\n        dtype: DT_UINT8", "inputs['truncation']"):
        assert name in shown.stdout, name
    again = _run(sys.executable, "-m", "sagan_tf.export", f"--model_dir={tiny_run}", f"--export_dir={exported}")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_export_serves_without_sagan_tf_and_equals_the_ema_generator(exported, tiny_run, tmp_path):
    out = tmp_path / "client.npz"
    result = _run(sys.executable, "-c", CLIENT, str(exported / "4"), str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported_sagan_tf"] is False
    got = np.load(out)
    images = got["images"]
    assert images.dtype == np.uint8 and images.shape == (3, 32, 32, 3)
    assert images.min() < images.max()  # not a constant image

    run = restore.load_run(str(tiny_run))  # the in-memory EMA generator of the same checkpoint
    assert run.model.ema_generator is not None
    expected = run.model.sampling_generator(got["z"], got["labels"], training=False).numpy()
    expected = np.round(np.clip((expected + 1) * 127.5, 0, 255))
    assert np.abs(images.astype(np.float64) - expected).max() <= 1  # rounding only
    description = json.loads((exported / "4" / "assets" / "sagan_tf_export.json").read_text())
    assert description["base_channels"] == 4  # the tiny run's width
    assert description["generator_parameters"] == sum(int(np.prod(w.shape))
                                                      for w in run.model.ema_generator.trainable_weights)
    not_ema = run.model.generator(got["z"], got["labels"], training=False).numpy()
    assert np.abs(images.astype(np.float64) - np.round((not_ema + 1) * 127.5)).max() > 1

    np.testing.assert_array_equal(got["first"], got["second"])  # a seed gives the same images
    assert np.any(got["first"] != got["other"])
    assert np.abs(got["first_z"]).max() <= 0.5 and got["first_z"].shape == (4, 128)  # truncated
    np.testing.assert_array_equal(got["first_labels"], [1, 1, 2, 3])
    assert got["random_labels"].shape == (4,) and np.all((got["random_labels"] >= 0) & (got["random_labels"] < 10))
    sampled = run.model.sampling_generator(got["first_z"], got["first_labels"], training=False).numpy()
    assert np.abs(got["first"].astype(np.float64) - np.round(np.clip((sampled + 1) * 127.5, 0, 255))).max() <= 1
    assert int(got["num_png"]) == 4 and bytes(got["png0"][:8]) == b"\x89PNG\r\n\x1a\n"

    # The TF1 session path TF Serving loads through (tag "serve", the SavedModel's saver): same images.
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    ran = _run(cli, "run", "--dir", str(exported / "4"), "--tag_set", "serve", "--signature_def", "sample",
               "--input_exprs", "seed=7;count=4;labels=[1,1,2,3];truncation=0.5", "--outdir", str(tmp_path / "cli"))
    assert ran.returncode == 0, ran.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "cli" / "images.npy"), got["first"])

    errors = report["errors"]
    assert "z must be [N, 128]; received width 5" in errors["z_width"]
    # From Python, the reason comes first (TensorFlow's own message starts with "Graph execution error:").
    import tensorflow as tf

    from sagan_tf.serving import error_reason

    loaded = tf.saved_model.load(str(exported / "4"))
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        loaded.signatures["serving_default"](z=tf.zeros([2, 5]), labels=tf.constant([1, 2]))
    assert caught.value.message.startswith("Graph execution error")
    assert error_reason(caught.value) == "z must be [N, 128]; received width 5"
    assert "labels must be in [0, 10)" in errors["label_range"] and "10" in errors["label_range"]
    assert "one entry per image: 2 labels for 3 images" in errors["label_count"]
    assert "count must be >= 0" in errors["negative_count"]
    assert "labels must be in [0, 10)" in errors["sample_labels"]


def test_sample_tool_from_checkpoint_and_saved_model(exported, tiny_sample_grid, tmp_path):
    import tensorflow as tf

    # tools/sample.py --model_dir=<tiny run> --classes=1,3 --per_class=5 (the shared tiny_sample_grid)
    grid = tf.io.decode_png(tf.io.read_file(str(tiny_sample_grid / "grid.png"))).numpy()
    assert grid.shape[0] == 2 * 96 and 5 * 96 + 30 < grid.shape[1] < 5 * 96 + 120  # enlarged 3x, labelled rows
    assert (grid[:, : grid.shape[1] - 5 * 96] < 128).any()  # the class names
    from_export = exported / "grid-4.png"  # without --output: beside the SavedModel, not in the repository
    result = _run(sys.executable, "tools/sample.py", f"--saved_model={exported / '4'}",
                  "--interpolate", "--steps=6", "--truncation=1.0", "--min_tile=32")
    assert result.returncode == 0, result.stderr[-3000:]
    grid = tf.io.decode_png(tf.io.read_file(str(from_export))).numpy()
    margin = grid.shape[1] - 6 * 32
    assert grid.shape[0] == 10 * 32 and 30 < margin < 120
    row = grid[:32, margin:].reshape(32, 6, 32, 3)
    assert np.abs(row[:, 0].astype(int) - row[:, 5].astype(int)).mean() > 0  # the ends differ


def test_unconditional_grey_generator_exports_rgb_images(tmp_path):
    import tensorflow as tf

    from sagan_tf import serving
    from sagan_tf.models import Generator

    generator = Generator(resolution=32, num_classes=0, base_channels=4, attention_resolutions=(16,), out_channels=1)
    generator.build()
    path = serving.export_generator(generator, 0, str(tmp_path), 2, {"note": "test"})
    assert os.listdir(tmp_path) == ["2"]
    with pytest.raises(FileExistsError, match="already exists"):
        serving.export_generator(generator, 0, str(tmp_path), 2)
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"z"}  # no labels for an unconditional model
    z = np.random.RandomState(0).randn(2, generator.dim_z).astype(np.float32)
    images = serve(z=tf.constant(z))["images"].numpy()
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey replicated
    expected = np.round(np.clip((generator(z, None, training=False).numpy()[..., 0] + 1) * 127.5, 0, 255))
    assert np.abs(images[..., 0] - expected).max() <= 1
    sample = loaded.signatures["sample"](seed=tf.constant(1, tf.int64), count=tf.constant(3),
                                         labels=tf.constant([], tf.int32), truncation=tf.constant(0.0))
    assert sample["images"].shape == (3, 32, 32, 3)
