"""Keras layers of SAGAN: spectral norm, self-attention, conditional batch norm, residual blocks."""

from sagan_tf.layers.attention import ATTENTION_STYLES, SelfAttention, attention_style_kwargs
from sagan_tf.layers.blocks import DiscriminatorBlock, GeneratorBlock
from sagan_tf.layers.normalization import ConditionalBatchNorm
from sagan_tf.layers.spectral_norm import SpectralNormalization, maybe_spectral_norm

__all__ = [
    "ATTENTION_STYLES",
    "ConditionalBatchNorm",
    "DiscriminatorBlock",
    "GeneratorBlock",
    "SelfAttention",
    "SpectralNormalization",
    "attention_style_kwargs",
    "maybe_spectral_norm",
]
