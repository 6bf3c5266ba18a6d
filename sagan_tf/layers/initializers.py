"""One initializer per layer.

A Keras 3 random initializer draws its seed once, when it is constructed, and is stateless after
that: one instance handed to several layers gives every same-shaped kernel the same values. Every
layer of sagan_tf therefore gets its own copy, as keras `MultiHeadAttention` and the model garden do.
"""

import math

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


BIAS_INITIALIZATIONS = ("zeros", "fan_in_uniform")


def check_bias_initialization(bias_initialization):
    """Returns `bias_initialization` if it names one of `BIAS_INITIALIZATIONS`, else raises ValueError."""
    if bias_initialization not in BIAS_INITIALIZATIONS:
        raise ValueError(f"`bias_initialization` must be one of {BIAS_INITIALIZATIONS}. "
                         f"Received: `bias_initialization={bias_initialization!r}`")
    return bias_initialization


def bias(bias_initialization, fan_in):
    """The bias initializer of a convolution or dense layer whose outputs each read `fan_in` inputs.

    "zeros": every bias starts at 0 (Keras's default). "fan_in_uniform": uniform on
    [-1/sqrt(fan_in), 1/sqrt(fan_in)], PyTorch's default for `Conv2d` and `Linear` biases, which
    BigGAN-PyTorch leaves in place when it initialises the weights.
    """
    if check_bias_initialization(bias_initialization) == "zeros":
        return "zeros"
    limit = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-limit, limit)
