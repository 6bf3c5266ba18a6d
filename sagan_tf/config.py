"""Finding and parsing gin files, with errors that name the file or binding at fault."""

import os

import gin

import sagan_tf.configurables  # noqa: F401  (registers the Keras optimizers)
import sagan_tf.data  # noqa: F401  (registers the sources and build_input)
import sagan_tf.eval.periodic  # noqa: F401  (registers Evaluator, get_classifier, evaluation_input)
import sagan_tf.losses  # noqa: F401
import sagan_tf.trainer  # noqa: F401

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


class ConfigError(ValueError):
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


def parse(gin_files, gin_params=()):
    """Parses gin files (names or paths) and bindings; raises ConfigError naming what is wrong."""
    paths = [resolve_gin_file(name) for name in gin_files]
    gin.add_config_file_search_path(GIN_DIR)
    try:
        gin.parse_config_files_and_bindings(paths, list(gin_params), finalize_config=False)
    except (ValueError, KeyError, OSError, SyntaxError) as error:
        raise ConfigError(f"Bad gin configuration: {error}") from error
    return paths
