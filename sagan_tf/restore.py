"""A training run's directory, read back: the model it trained, for evaluation, export and sampling.

A run directory holds `model.json` (the data facts the networks were built for: classes, resolution,
channels), `model_config.json` (the Keras config of the `SAGAN` and its networks, written when the run
started), `checkpoints/` (`best/` too when training evaluated) and `operative_config.gin` (every gin
binding the run used: how it was configured, not how it is read back). `load_run` rebuilds the model
from the Keras configs and restores the networks and the EMA weights (not the optimisers). Runs from
before `model_config.json` are rebuilt from their `operative_config.gin`.
"""

import dataclasses
import json
import os

from sagan_tf import checkpointing, commands, config
from sagan_tf.records import write_json
from sagan_tf.models import factory
from sagan_tf.models.factory import DataFacts

MODEL_FACTS = "model.json"
MODEL_CONFIG, OPERATIVE_CONFIG = commands.RUN_FILES


class RestoreError(checkpointing.CheckpointError):
    """A run directory or checkpoint that cannot be used."""


def write_model(model_dir, model, facts):
    """Writes the data facts and the model's Keras config into a run directory."""
    write_json(os.path.join(model_dir, MODEL_FACTS), dataclasses.asdict(facts))
    write_json(os.path.join(model_dir, MODEL_CONFIG), factory.model_config(model))


def read_facts(model_dir):
    path = os.path.join(model_dir, MODEL_FACTS)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return DataFacts(**json.load(f))


def resolve_checkpoint(model_dir, checkpoint=None):
    """The checkpoint path for `checkpoint`: None or "latest", "best", a step number, or a path."""
    try:
        return checkpointing.resolve(model_dir, checkpoint)
    except checkpointing.CheckpointError as error:
        raise RestoreError(str(error)) from None


@dataclasses.dataclass
class Run:
    model: object  # the restored SAGAN; `model.sampling_generator` is the generator to use
    checkpoint: str
    step: int
    facts: DataFacts


def _legacy_model(model_dir, facts):
    """The model of a run written before model_config.json, built from its operative gin config (its
    own bindings only, whatever gin holds in this process)."""
    with config.isolated():
        config.parse([os.path.join(model_dir, OPERATIVE_CONFIG)], skip_unknown=True)
        if facts is None:  # runs from before model.json: ask the data
            from sagan_tf.eval.periodic import evaluation_input  # noqa: PLC0415  (only for such old runs)

            facts = DataFacts.of(evaluation_input(1))
        return factory.build_model(facts), facts


def _check_run_dir(model_dir):
    """Raises RestoreError unless `model_dir` holds a run's model_config.json or operative_config.gin."""
    problem = commands.no_run_message(model_dir)
    if problem:
        raise RestoreError(problem + ".")


def load_model(model_dir):
    """(the built SAGAN of a run directory, its DataFacts), from model_config.json (or, for older runs,
    operative_config.gin). Raises RestoreError if `model_dir` is no run directory."""
    _check_run_dir(model_dir)
    stored = os.path.join(model_dir, MODEL_CONFIG)
    facts = read_facts(model_dir)
    if os.path.exists(stored) and facts is not None:
        with open(stored) as f:
            return factory.model_from_config(json.load(f), facts.channels), facts
    return _legacy_model(model_dir, facts)


def parse_run_config(model_dir, gin_files=(), gin_params=()):
    """Parses the run's operative gin config (for its data: `build_input`, the sources and
    `evaluation_input`; bindings of parts not imported here are skipped) and then `gin_files` and
    `gin_params` strictly, so that `evaluation_input()` gives the run's real images (or the ones asked)."""
    import sagan_tf.data  # noqa: F401, PLC0415  (registers build_input and the sources)
    import sagan_tf.eval.periodic  # noqa: F401, PLC0415  (registers evaluation_input)

    config.parse([os.path.join(model_dir, OPERATIVE_CONFIG)], skip_unknown=True)
    config.parse(gin_files, gin_params)


def load_run(model_dir, checkpoint=None):
    """Builds the run's model and restores `checkpoint` (None: the latest; "best"; a step; a path)."""
    _check_run_dir(model_dir)  # before the checkpoint: "no run here" says more than "no checkpoint"
    path = resolve_checkpoint(model_dir, checkpoint)
    model, facts = load_model(model_dir)
    checkpointing.weights_checkpoint(model).restore(path).expect_partial().assert_existing_objects_matched()
    return Run(model, path, checkpointing.step_of(path), facts)


