"""One initializer per layer.

A Keras 3 random initializer draws its seed once, when it is constructed, and is stateless after
that: one instance handed to several layers gives every same-shaped kernel the same values. Every
layer of sagan_tf therefore gets its own copy, as keras `MultiHeadAttention` and the model garden do.
"""

import keras


def fresh(initializer):
    """A new instance of `initializer` (a name, config or instance) with a seed of its own.

    A seed in the given initializer is dropped: it would make every copy identical again. Seeds come
    from Keras's global seed (`keras.utils.set_random_seed`, which `train.seed` sets), so a run is
    still reproducible.
    """
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = None
    return initializer.__class__.from_config(config)


@keras.saving.register_keras_serializable(package="sagan_tf")
class OnePlus(keras.initializers.Initializer):
    """1 + the values of another initializer (BigGAN's class-conditional gains start near 1)."""

    def __init__(self, initializer):
        self.initializer = keras.initializers.get(initializer)

    def __call__(self, shape, dtype=None):
        return 1.0 + self.initializer(shape, dtype=dtype)

    def get_config(self):
        return {"initializer": keras.initializers.serialize(self.initializer)}
