"""Rebuilding a training run's model from its directory, for evaluation, export and sampling.

A run directory holds `operative_config.gin` (every gin binding the run used), `model.json` (the
data facts the networks were built for: classes, resolution, channels) and `checkpoints/`
(`best/` too when training evaluated). `load_run` parses the config, builds the `SAGAN`, restores
the networks and the EMA weights (not the optimisers) and returns them.
"""

import dataclasses
import json
import os
import re

import tensorflow as tf

MODEL_FACTS = "model.json"


class RestoreError(ValueError):
    """A run directory or checkpoint that cannot be used."""


@dataclasses.dataclass
class DataFacts:
    """What the networks depend on in the data: enough to rebuild them without reading the data."""

    num_classes: int
    resolution: int
    channels: int
    source_name: str = ""


def write_facts(model_dir, input_spec):
    facts = DataFacts(input_spec.num_classes, input_spec.resolution, input_spec.channels, input_spec.source_name)
    with open(os.path.join(model_dir, MODEL_FACTS), "w") as f:
        json.dump(dataclasses.asdict(facts), f, indent=2)


def read_facts(model_dir):
    path = os.path.join(model_dir, MODEL_FACTS)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return DataFacts(**json.load(f))


def resolve_checkpoint(model_dir, checkpoint=None):
    """The checkpoint path for `checkpoint`: None or "latest", "best", a step number, or a path."""
    if checkpoint in (None, "", "latest"):
        path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
        if path is None:
            raise RestoreError(f"No checkpoint in {os.path.join(model_dir, 'checkpoints')}.")
        return path
    if checkpoint == "best":
        path = tf.train.latest_checkpoint(os.path.join(model_dir, "best"))
        if path is None:
            raise RestoreError(f"No best-FID checkpoint in {os.path.join(model_dir, 'best')} "
                               "(training keeps one only with train.eval_every > 0).")
        return path
    path = os.path.join(model_dir, "checkpoints", f"ckpt-{checkpoint}") if str(checkpoint).isdigit() else checkpoint
    if not tf.io.gfile.exists(path + ".index"):
        raise RestoreError(f"Checkpoint {path} does not exist (no {path}.index).")
    return path


def checkpoint_step(path):
    match = re.search(r"ckpt-(\d+)$", path)
    return int(match.group(1)) if match else None


@dataclasses.dataclass
class Run:
    model: object  # the restored SAGAN; `model.sampling_generator` is the generator to use
    checkpoint: str
    step: int
    facts: DataFacts


def load_run(model_dir, checkpoint=None, gin_files=(), gin_params=()):
    """Parses the run's gin config (plus extras), builds the model and restores `checkpoint`."""
    from sagan_tf import config, trainer  # noqa: PLC0415  (config imports every configurable)

    operative = os.path.join(model_dir, "operative_config.gin")
    if not os.path.exists(operative):
        raise RestoreError(f"{operative} does not exist: is {model_dir} a sagan_tf training directory?")
    path = resolve_checkpoint(model_dir, checkpoint)
    config.parse([operative, *gin_files], gin_params)
    facts = read_facts(model_dir)
    if facts is None:  # runs from before model.json: ask the data
        from sagan_tf.eval.periodic import evaluation_input  # noqa: PLC0415

        spec = evaluation_input(1)
        facts = DataFacts(spec.num_classes, spec.resolution, spec.channels, spec.source_name)
    model = trainer.build_model(facts)
    trainer.weights_checkpoint(model).restore(path).expect_partial().assert_existing_objects_matched()
    return Run(model, path, checkpoint_step(path), facts)
