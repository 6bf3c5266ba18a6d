"""SAGAN's networks."""

from sagan_tf.models.common import parameter_summary
from sagan_tf.models.discriminator import DISCRIMINATOR_CHANNELS, Discriminator
from sagan_tf.models.generator import GENERATOR_CHANNELS, Generator

__all__ = [
    "DISCRIMINATOR_CHANNELS",
    "Discriminator",
    "GENERATOR_CHANNELS",
    "Generator",
    "parameter_summary",
]
