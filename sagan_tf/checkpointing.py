"""What a checkpoint holds and where to find one: the training checkpoint's layout, the weights-only view
that sampling, evaluation and export read, and the naming of checkpoint paths.

Depends on TensorFlow only: the trainer writes through it and `restore` reads through it.
"""

import os
import re

import tensorflow as tf

from sagan_tf import commands
from sagan_tf.commands import UserError


class CheckpointError(UserError):
    """A checkpoint that does not exist or cannot be read."""


class VariableBag(tf.Module):
    """The tf.Variables behind a list of Keras variables, keyed so that a `tf.train.Checkpoint` saves all.

    A `tf.train.Checkpoint` of a Keras 3 model reaches only some of its variables (not those of layers
    kept in lists, nor Keras variables in plain lists): the rest would be saved only through the
    optimiser's slot references, and non-trainable ones (BatchNorm statistics, spectral-norm u and
    sigma, EMA weights) not at all. Keys are the variables' Keras paths without the model's own name
    (so that `generator_3` restores what `generator` saved), or their positions.
    """

    def __init__(self, variables, by_position=False):
        super().__init__()
        if by_position:
            keys = [str(i) for i in range(len(variables))]
        else:
            keys = [v.path.split("/", 1)[-1] for v in variables]
            if len(set(keys)) != len(keys):
                raise ValueError("Variable paths are not unique: " + ", ".join(sorted(k for k in keys if keys.count(k) > 1)))
        self.variables_by_key = {key: getattr(v, "value", v) for key, v in zip(keys, variables)}


def model_trackables(model):
    """{checkpoint name: VariableBag} of every network and EMA variable of a built `SAGAN`."""
    return {
        "generator": VariableBag(model.generator.variables),
        "discriminator": VariableBag(model.discriminator.variables),
        "ema": VariableBag(list(getattr(model, "_ema_weights", [])), by_position=True),
    }


def weights_checkpoint(model):
    """A `tf.train.Checkpoint` of the networks and the EMA weights: what sampling and evaluation need.

    It reads the training checkpoints (`restore(...).expect_partial()` skips the optimisers).
    """
    return tf.train.Checkpoint(**model_trackables(model))


INPUT_LAYOUT_KEY = "input_layout/.ATTRIBUTES/VARIABLE_VALUE"


def training_checkpoint(model, iterator=None, input_layout=None):
    """The training checkpoint of a compiled `SAGAN`: the networks, the EMA, both optimisers, the z
    stream's seed state and, when given, the input iterator's position and the layout it is read with
    (`input_layout`: a tuple, saved as an int64 variable; see `saved_input`)."""
    checkpoint = tf.train.Checkpoint(
        **model_trackables(model),
        generator_optimizer=model.g_optimizer,
        discriminator_optimizer=model.d_optimizer,
        seed_state=model.seed_generator.state.value,
    )
    if iterator is not None:
        checkpoint.iterator = iterator
        if input_layout is not None:
            checkpoint.input_layout = tf.Variable(input_layout, dtype=tf.int64, trainable=False, name="input_layout")
    return checkpoint


def saved_input(path):
    """What the training checkpoint `path` holds of its input: (whether it holds an iterator's position, the
    layout (global batch, replicas, input pipelines) the position was saved with, or None for a checkpoint
    from before layouts were saved). A position restores only into the same layout: its batches have the
    size of one replica's."""
    reader = tf.train.load_checkpoint(path)
    position = any(name.startswith("iterator/") for name in reader.get_variable_to_shape_map())
    layout = tuple(int(v) for v in reader.get_tensor(INPUT_LAYOUT_KEY)) if reader.has_tensor(INPUT_LAYOUT_KEY) else None
    return position, layout


def resolve(model_dir, checkpoint=None):
    """The checkpoint path for `checkpoint`: None or "latest", "best", a step number, or a path."""
    checkpoints, best = os.path.join(model_dir, "checkpoints"), os.path.join(model_dir, "best")
    if checkpoint in (None, "", "latest"):
        path = tf.train.latest_checkpoint(checkpoints)
        if path is None:
            raise CheckpointError(f"No checkpoint in {checkpoints}.")
        return path
    if checkpoint == "best":
        path = tf.train.latest_checkpoint(best)
        if path is None:
            raise CheckpointError(f"No best-FID checkpoint in {best} "
                                  "(training keeps one only with train.eval_every > 0).")
        return path
    path = os.path.join(checkpoints, f"ckpt-{checkpoint}") if str(checkpoint).isdigit() else checkpoint
    if not tf.io.gfile.exists(path + ".index"):
        raise CheckpointError(commands.missing_checkpoint_message(path, commands.saved_steps(model_dir)) + ".")
    return path


def step_of(path):
    """The step in a checkpoint path `.../ckpt-<step>`, or None."""
    match = re.search(r"ckpt-(\d+)$", path)
    return int(match.group(1)) if match else None
