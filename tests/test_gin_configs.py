"""The packaged gin files parse and build the networks they describe."""

import pathlib

import gin

import sagan_tf  # noqa: F401  (registers the configurables)
from sagan_tf import Discriminator, Generator

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin"


def test_imagenet_gin_is_the_paper_setup():
    gin.parse_config_file(str(GIN_DIR / "imagenet.gin"))
    g, d = Generator(), Discriminator()
    assert (g.resolution, g.num_classes, g.base_channels, g.attention_resolutions) == (128, 1000, 64, (32,))
    assert g.channel_multipliers == (16, 16, 8, 4, 2, 1)
    assert d.channel_multipliers == (1, 2, 4, 8, 16, 16)
    assert [layer.name for layer in d.attention_layers] == ["attention32"]
    assert d._attention_after == (1,)  # after the second down-block
    assert g._attention_after == (2,)  # after the third up-block
