"""Attention maps per query point, and the paper-style figure."""

import numpy as np
import pytest

from sagan_tf import attention_maps
from sagan_tf.layers import SelfAttention
from sagan_tf.layers.attention import ATTENTION_STYLES
from sagan_tf.models import Discriminator, Generator


def test_query_maps_are_the_layers_rows_and_sum_to_one():
    layer = SelfAttention(**ATTENTION_STYLES["official"])
    x = np.random.RandomState(0).randn(2, 8, 8, 16).astype(np.float32)
    _, attention = layer(x, return_attention=True)
    attention = attention.numpy()
    assert attention.shape == (2, 64, 16)  # keys pooled 2x2
    points = [(0.3, 0.8), (0.0, 0.0), (0.99, 0.5)]
    maps = attention_maps.query_maps(attention, 8, 8, points)
    assert maps.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-5)
    # (0.3, 0.8) on an 8x8 grid is row 2, column 6: query 22, keys in row-major order of the 4x4 grid.
    np.testing.assert_array_equal(maps[:, 0].reshape(2, 16), attention[:, 22])
    np.testing.assert_array_equal(maps[:, 2].reshape(2, 16), attention[:, 7 * 8 + 4])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        attention_maps.query_maps(attention, 8, 8, [(1.0, 0.5)])
    with pytest.raises(ValueError, match="4x8 layer"):
        attention_maps.query_maps(attention, 4, 8, points)


def test_figure_of_generator_and_discriminator_maps():
    generator = Generator(resolution=32, num_classes=3, base_channels=4, attention_resolutions=(8, 16))
    images, maps = generator(np.random.RandomState(1).randn(2, 128).astype(np.float32), np.array([0, 2]),
                             training=False, return_attention=True)
    assert sorted(maps) == sorted(layer.name for layer in generator.attention_layers)
    points = attention_maps.default_queries(3)
    figure = attention_maps.attention_figure(images.numpy(), {k: v.numpy() for k, v in maps.items()}, points, scale=2)
    assert figure.shape == (2 * 64, (1 + 2 * 3) * 64, 3) and figure.dtype == np.uint8
    discriminator = Discriminator(resolution=32, num_classes=3, base_channels=4, attention_resolutions=(16,))
    _, d_maps = discriminator(images, np.array([0, 2]), training=False, return_attention=True)
    (name, d_map), = d_maps.items()
    assert d_map.shape == (2, 16 * 16, 8 * 8)
    np.testing.assert_allclose(d_map.numpy().sum(-1), 1.0, rtol=1e-5)


def test_overlay_puts_the_heat_where_the_map_peaks():
    heat = np.zeros((4, 4))
    heat[1, 3] = 1.0
    picture = np.full((32, 32, 3), 100, np.uint8)
    out = attention_maps.overlay(picture, heat, (0.9, 0.1))
    red = out[..., 0].astype(int) - out[..., 1].astype(int)
    y, x = np.unravel_index(np.argmax(red), red.shape)
    assert 8 <= y < 16 and 24 <= x < 32  # the key cell (1, 3) covers rows 8-15, columns 24-31
    assert tuple(out[29, 3]) == (0, 255, 0)  # the query dot


def test_visualize_attention_tool_on_a_run(tiny_run, tmp_path):
    import os
    import subprocess
    import sys

    import tensorflow as tf

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for network in ("generator", "discriminator"):
        output = tmp_path / f"{network}.png"
        result = subprocess.run([sys.executable, "tools/visualize_attention.py", f"--model_dir={tiny_run}",
                                 f"--output={output}", f"--network={network}", "--queries=0.2,0.2;0.5,0.8"],
                                capture_output=True, text=True, cwd=repo, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        figure = tf.io.decode_png(tf.io.read_file(str(output))).numpy()
        # 4 images; the image + 2 queries x 1 layer; 32px x4; a title and column header band above, a legend below.
        assert figure.shape == (34 + 4 * 128 + 46, (1 + 2) * 128, 3)
        assert (figure[:34] < 100).any() and (figure[-46:] < 100).any()  # text on the white bands
        bar = figure[34 + 4 * 128 + 4, 4:124]  # the colour scale: black to red
        assert bar[0].max() < 10 and bar[-1][0] > 200 and bar[-1][0] > 3 * bar[-1][1]
    assert any(name.startswith("events") for name in os.listdir(tiny_run / "attention"))
