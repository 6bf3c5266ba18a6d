"""Finding and parsing gin files, with errors that name the file or binding at fault.

This module parses; it registers nothing but the Keras optimizers. A caller parsing a whole run's
config first imports the modules whose configurables it names (`sagan_tf.gin_registry` imports all).

gin checks the parameters of configurable functions, but not of classes whose constructor takes
`**kwargs` (every Keras layer and model): a misspelt `Generator.base_chanels` would pass gin and fail
late, after the run directory was made. `parse` checks every binding against the constructor
signatures (a Keras class's own and its bases' named arguments) and says what was meant.
"""

import contextlib
import copy
import difflib
import inspect
import logging
import os

import gin
import gin.config as gin_config
import keras

import sagan_tf.configurables  # noqa: F401  (registers the Keras optimizers)
from sagan_tf.commands import UserError

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


class ConfigError(UserError):
    """A gin file or binding that cannot be used."""


def resolve_gin_file(name):
    """A path as given if it exists, else `name` (with .gin added if missing) in the gin/ folder."""
    candidates = [name, os.path.join(GIN_DIR, name)]
    if not name.endswith(".gin"):
        candidates += [name + ".gin", os.path.join(GIN_DIR, name + ".gin")]
    for path in candidates:
        if os.path.isfile(path):
            return path
    available = sorted(f for f in os.listdir(GIN_DIR) if f.endswith(".gin")) if os.path.isdir(GIN_DIR) else []
    raise ConfigError(f"gin file {name!r} not found (looked in . and {GIN_DIR}; there: {', '.join(available)}).")


class _QuietSearchPath(logging.Filter):
    """Drops gin's "Path not found: base.gin" error, logged for every include before the gin/ folder
    (a search path) is tried; a file missing everywhere still fails with an error naming it."""

    def filter(self, record):
        return record.msg != "Path not found: %s"


logging.getLogger().addFilter(_QuietSearchPath())

_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def accepted_parameters(target):
    """(names, any_name): the arguments `target` (a function or class) takes by name, and whether it
    takes arbitrary names. A Keras layer, model or optimizer forwards **kwargs to its bases, so its
    names are those of every `__init__` in its MRO and it takes no others."""
    if not inspect.isclass(target):
        parameters = inspect.signature(target).parameters.values()
        return {p.name for p in parameters if p.kind in _KEYWORD}, any(
            p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)
    names, any_name = set(), False
    for cls in target.__mro__:
        if "__init__" not in vars(cls) or cls is object:
            continue
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        names |= {p.name for p in parameters if p.kind in _KEYWORD}
        any_name |= any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)
    if issubclass(target, (keras.layers.Layer, keras.optimizers.Optimizer)):
        any_name = False
    return names, any_name


def _suggest(name, candidates):
    close = difflib.get_close_matches(name, sorted(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_bindings():
    """Raises ConfigError for the first binding of a parameter its configurable does not take."""
    for (scope, selector), bindings in gin_config._CONFIG.items():
        info = gin_config._REGISTRY.get_match(selector)
        if info is None or selector == "gin.macro":
            continue
        names, any_name = accepted_parameters(info.wrapped)
        if any_name:
            continue
        short = selector.rsplit(".", 1)[-1]
        for parameter in bindings:
            if parameter not in names:
                where = f"{scope}/{short}" if scope else short
                raise ConfigError(f"Unknown gin binding {where}.{parameter}: {short} takes no parameter "
                                  f"{parameter!r}{_suggest(parameter, names)}.")


def _one_line(error):
    """gin's message (which adds the file and line on lines of their own) as one line, with a suggestion
    for an unknown parameter or configurable."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    message, suggestion = lines[0], ""
    prefix = "Configurable '"
    if message.startswith(prefix) and "doesn't have a parameter named '" in message:
        configurable = message[len(prefix):message.index("'", len(prefix))]
        parameter = message.rsplit("'", 2)[-2]
        info = gin_config._REGISTRY.get_match(configurable)
        if info is not None:
            suggestion = _suggest(parameter, accepted_parameters(info.wrapped)[0])
    elif message.startswith("No configurable matching '"):
        name = message.split("'")[1]
        suggestion = _suggest(name, {selector.rsplit(".", 1)[-1] for selector, _ in gin_config._REGISTRY.items()})
    return message.rstrip(".") + suggestion + "".join(f"; {line}" for line in lines[1:])


def parse(gin_files, gin_params=(), skip_unknown=False):
    """Parses gin files (names or paths) and bindings; raises ConfigError (one line) naming what is wrong.

    `skip_unknown`: ignore bindings of configurables not registered in this process (for reading a run's
    own operative config where only some of its parts are needed)."""
    paths = [resolve_gin_file(name) for name in gin_files]
    gin.add_config_file_search_path(GIN_DIR)
    try:
        gin.parse_config_files_and_bindings(paths, list(gin_params), finalize_config=False,
                                            skip_unknown=skip_unknown)
    except (ValueError, KeyError, OSError, SyntaxError) as error:
        raise ConfigError(f"Bad gin configuration: {_one_line(error)}") from error
    check_bindings()
    return paths


def is_bound(name):
    """Whether gin holds a binding for `name` (e.g. "build_input.channels")."""
    try:
        gin.query_parameter(name)
        return True
    except ValueError:
        return False


@contextlib.contextmanager
def isolated():
    """Runs its body on an empty gin config and puts the caller's bindings back afterwards."""
    saved = copy.deepcopy(gin_config._CONFIG)
    try:
        gin.clear_config()
        yield
    finally:
        gin.clear_config()
        gin_config._CONFIG.update(saved)
