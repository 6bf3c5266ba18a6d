"""Finding and parsing gin files, with errors that name the file or binding at fault.

This module parses; it registers nothing but the Keras optimizers and a gin file reader for the
configs shipped in the package `sagan_tf.gin` (the top-level gin/ folder, read with importlib.resources:
`imagenet.gin`, `ablations/equal_lr.gin` and their `include` lines resolve in a checkout, an editable
install and a wheel alike). A caller parsing a whole run's config first imports the modules whose
configurables it names (`sagan_tf.gin_registry` imports all).

gin checks the parameters of configurable functions, but not of classes whose constructor takes
`**kwargs` (every Keras layer and model): a misspelt `Generator.base_chanels` would pass gin and fail
late, after the run directory was made. `parse` checks every binding against the constructor
signatures (a Keras class's own and its bases' named arguments) and says what was meant.
"""

import contextlib
import difflib
import inspect
import logging

import gin
import gin.config_parser
import keras

import sagan_tf.configurables  # noqa: F401  (registers the Keras optimizers)
from sagan_tf import compat
from sagan_tf.gin_files import (  # noqa: F401  (the TF-free part, re-exported)
    ConfigError,
    packaged_gin_file,
    packaged_gin_names,
    resolve_gin_file,
)


def _open_packaged(name):
    return packaged_gin_file(name).open("r", encoding="utf-8")


def _is_packaged(name):
    return packaged_gin_file(name) is not None


# `include 'base.gin'` lines name shipped files; gin reads them through this reader, before its own
# package-resource reader (which fails on `experiments/...` when a folder `experiments/` is importable).
compat.register_gin_file_reader_first(_open_packaged, _is_packaged)


class _QuietSearchPath(logging.Filter):
    """Drops gin's "Path not found: base.gin" error, logged for every include before gin tries the
    reader of the shipped files; a file missing everywhere still fails with an error naming it."""

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


class _Placeholders(gin.config_parser.ParserDelegate):
    """Reads references and macros as plain strings: only the binding keys are looked at."""

    def configurable_reference(self, scoped_configurable_name, evaluate):
        return scoped_configurable_name

    def macro(self, macro_name):
        return macro_name


def current_bindings():
    """(scope, selector, parameter) of every binding gin holds, read from `gin.config_str()`."""
    parser = gin.config_parser.ConfigParser(gin.config_str(), _Placeholders())
    return [(statement.scope, statement.selector, statement.arg_name) for statement in parser
            if isinstance(statement, gin.config_parser.BindingStatement)]


def _configurable(selector):
    """The function or class gin registered under `selector`, or None."""
    try:
        return gin.get_configurable(selector)
    except ValueError:
        return None


def check_bindings():
    """Raises ConfigError for the first binding of a parameter its configurable does not take, or of an
    optimiser that its scope's `train.<scope>_optimizer` does not use (gin would ignore it silently)."""
    bindings = current_bindings()
    for scope, selector, parameter in bindings:
        target = _configurable(selector) if selector and parameter else None
        if target is None:  # a macro, or a configurable of a module not imported here (skip_unknown)
            continue
        names, any_name = accepted_parameters(target)
        if not any_name and parameter not in names:
            short = selector.rsplit(".", 1)[-1]
            where = f"{scope}/{short}" if scope else short
            raise ConfigError(f"Unknown gin binding {where}.{parameter}: {short} takes no parameter "
                              f"{parameter!r}{_suggest(parameter, names)}.")
    _check_optimizer_bindings(bindings)


def _check_optimizer_bindings(bindings):
    for scope in ("generator", "discriminator"):
        try:
            used = getattr(gin.query_parameter(f"train.{scope}_optimizer"), "selector", None)
        except (ValueError, KeyError):  # no train binding in this config, or train not registered here
            continue
        used_target = _configurable(used) if used else None
        if used_target is None:
            continue
        for binding_scope, selector, parameter in bindings:
            target = _configurable(selector) if parameter and binding_scope == scope else None
            if (target is not used_target and isinstance(target, type)
                    and issubclass(target, keras.optimizers.Optimizer)):
                bound, used_name = _full_selector(target, selector), _full_selector(used_target, used)
                raise ConfigError(f"Unused gin binding {scope}/{bound}.{parameter}: train.{scope}_optimizer "
                                  f"is @{scope}/{used_name}", f"bind {scope}/{used_name}.{parameter}, or set "
                                  f"train.{scope}_optimizer = @{scope}/{bound}")


def _full_selector(target, selector):
    """The longest selector gin registered `target` under ("keras.optimizers.Adam" for "Adam")."""
    names = [name for name in compat.registered_configurables() if _configurable(name) is target]
    return max(names, key=len) if names else selector


def _one_line(error):
    """gin's message (which adds the file and line on lines of their own) as one line, with a suggestion
    for an unknown parameter or configurable."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    message, suggestion = lines[0], ""
    prefix = "Configurable '"
    if message.startswith(prefix) and "doesn't have a parameter named '" in message:
        configurable = message[len(prefix):message.index("'", len(prefix))]
        parameter = message.rsplit("'", 2)[-2]
        target = _configurable(configurable)
        if target is not None:
            suggestion = _suggest(parameter, accepted_parameters(target)[0])
    elif message.startswith("No configurable matching '"):
        name = message.split("'")[1]
        suggestion = _suggest(name, {selector.rsplit(".", 1)[-1] for selector in compat.registered_configurables()})
    return message.rstrip(".") + suggestion + "".join(f"; {line}" for line in lines[1:])


def parse(gin_files, gin_params=(), skip_unknown=False):
    """Parses gin files (names or paths) and bindings; raises ConfigError (one line) naming what is wrong.

    `skip_unknown`: ignore bindings of configurables not registered in this process (for reading a run's
    own operative config where only some of its parts are needed)."""
    paths = [resolve_gin_file(name) for name in gin_files]
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
    saved = gin.config_str()
    try:
        gin.clear_config()
        yield
    finally:
        gin.clear_config()
        with gin.unlock_config():
            gin.parse_config(saved)
