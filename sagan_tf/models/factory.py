"""Building a `SAGAN` for a dataset: from gin (a new run) or from stored Keras configs (a run's directory).

The networks depend on three facts of the data (classes, resolution, channels); `DataFacts` carries
them, so that a model can be rebuilt without reading the data.
"""

import dataclasses

import keras

from sagan_tf.commands import UserError
from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.generator import Generator
from sagan_tf.models.sagan import SAGAN


@dataclasses.dataclass
class DataFacts:
    """What the networks depend on in the data: enough to rebuild them without reading the data."""

    num_classes: int
    resolution: int
    channels: int
    source_name: str = ""

    @classmethod
    def of(cls, input_spec):
        """The facts of an `InputSpec` (or any object with these attributes)."""
        return cls(input_spec.num_classes, input_spec.resolution, input_spec.channels,
                   getattr(input_spec, "source_name", ""))


class ModelConfigError(UserError):
    """Bindings the networks reject (e.g. channel multipliers that do not fit the resolution)."""


def build_model(facts):
    """The gin-configured, built `SAGAN` for `facts` (a `DataFacts` or an `InputSpec`); call in a strategy
    scope. Generator, Discriminator and SAGAN take their other arguments from gin bindings; an argument
    their constructors reject raises ModelConfigError (one line in a command)."""
    try:
        model = SAGAN(
            Generator(num_classes=facts.num_classes, resolution=facts.resolution, out_channels=facts.channels),
            Discriminator(num_classes=facts.num_classes, resolution=facts.resolution),
        )
    except ValueError as error:  # the constructors' argument checks; gin appends the configurable's name
        what, _, context = str(error).partition("\n  In call to configurable ")
        where = context.split(" ")[0].strip("'") if context else "the model"
        raise ModelConfigError(what, f"change the gin bindings of {where}") from None
    model.build_all(facts.channels)
    return model


def model_config(model):
    """The Keras config of a `SAGAN` (networks included), as stored in a run directory. The networks'
    dtype policy is left out: a run is rebuilt in float32 whatever precision it trained in."""
    config = keras.saving.serialize_keras_object(model)
    for entry in (config, config["config"]["generator"], config["config"]["discriminator"]):
        entry["config"].pop("dtype", None)
        entry.pop("compile_config", None)  # the optimisers are the trainer's, not the model's
        entry.pop("build_config", None)  # model_from_config builds
    return config


def model_from_config(config, channels):
    """The built `SAGAN` of a `model_config(...)` dict; `channels` of the images D reads."""
    model = keras.saving.deserialize_keras_object(config)
    model.build_all(channels)
    return model
