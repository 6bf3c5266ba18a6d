"""gin at the edges: the decorator for sagan_tf's configurable Keras classes, and the only
`gin.external_configurable` registrations (the optimisers, for the scoped TTUR bindings
`generator/sagan_tf.optimizers.FusedAdam.learning_rate = 1e-4`, `discriminator/...`; Keras's own optimisers too).

Plain `import gin`: `gin.tf` needs the removed `tf.estimator` on TensorFlow >= 2.16.
"""

import inspect

import gin
import keras

from sagan_tf import optimizers


def configurable(cls):
    """`gin.configurable` for a Keras layer or model class.

    gin replaces `__init__` by a `(*args, **kwargs)` wrapper; Keras inspects `__init__`'s argument
    list to build a default config, so the original signature is put back on the wrapper.
    """
    signature = inspect.signature(cls.__init__)
    cls = gin.configurable(cls)
    cls.__init__.__signature__ = signature
    return cls


_OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Lion")
for _name in _OPTIMIZERS:
    gin.external_configurable(getattr(keras.optimizers, _name), module="keras.optimizers")
gin.external_configurable(optimizers.FusedAdam, module="sagan_tf.optimizers")
