"""sagan_tf: Self-Attention GANs (Zhang, Goodfellow, Metaxas, Odena, 2019) in TensorFlow 2 / Keras 3."""

from sagan_tf.layers import (
    ConditionalBatchNorm,
    DiscriminatorBlock,
    GeneratorBlock,
    SelfAttention,
    SpectralNormalization,
)
from sagan_tf.models import Discriminator, Generator, parameter_summary
from sagan_tf.models.sagan import SAGAN

__version__ = "0.1.0"

__all__ = [
    "ConditionalBatchNorm",
    "Discriminator",
    "DiscriminatorBlock",
    "Generator",
    "GeneratorBlock",
    "SAGAN",
    "SelfAttention",
    "SpectralNormalization",
    "parameter_summary",
]
