"""sagan_tf: Self-Attention GANs (Zhang, Goodfellow, Metaxas, Odena, 2019) in TensorFlow 2 / Keras 3.

The public names below load on first use, so that importing a submodule (`python -m sagan_tf.train`)
does not start TensorFlow: the commands set TensorFlow's environment (TF_ENABLE_ONEDNN_OPTS) first.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "ConditionalBatchNorm": "sagan_tf.layers",
    "Discriminator": "sagan_tf.models",
    "DiscriminatorBlock": "sagan_tf.layers",
    "Generator": "sagan_tf.models",
    "GeneratorBlock": "sagan_tf.layers",
    "SAGAN": "sagan_tf.models.sagan",
    "SelfAttention": "sagan_tf.layers",
    "SpectralNormalization": "sagan_tf.layers",
    "parameter_summary": "sagan_tf.models",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sagan_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
