"""The one module that reaches into TensorFlow, Keras, gin and tensorflow-gan internals.

Written for tensorflow 2.21, keras 3.15, gin-config 0.5 and tensorflow-gan 2.1. Each function
below stands in for a public API that does not exist; `tests/test_compat.py` checks every internal it
uses and names the one an upgrade moved. Nothing else in sagan_tf imports a private name.
"""

import contextlib
import functools
import importlib.util
import os
import sys
import types

WRITTEN_FOR = {"tensorflow": "2.21", "keras": "3.15", "gin-config": "0.5", "tensorflow-gan": "2.1"}


def global_seed():
    """TensorFlow's global seed (`tf.random.set_seed`), None when unset: TensorFlow has a setter only."""
    from tensorflow.python.eager import context  # noqa: PLC0415

    return context.global_seed()


@contextlib.contextmanager
def no_autocast():
    """Reads Keras variables in their own dtype inside a mixed-precision layer call (Keras casts float
    variables to the compute dtype there, with no public switch to read one unconverted)."""
    from keras.src.backend.common.variables import AutocastScope  # noqa: PLC0415

    with AutocastScope(None):
        yield


def sublayers(layer):
    """Every layer inside `layer`, recursively, `layer` included (Keras lists only a model's direct layers)."""
    return list(layer._flatten_layers())


def adam_slots(optimizer, variable):
    """(momentum, velocity): the slot variables of `variable` in a Keras Adam, which keeps them in
    private lists indexed by a private key and lists them publicly only all together."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


@functools.lru_cache(maxsize=None)
def onednn_enabled():
    """Whether this TensorFlow build runs oneDNN (MKL) kernels; TensorFlow has no public query for it."""
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415

    return bool(_pywrap_util_port.IsMklEnabled())


def register_gin_file_reader_first(reader, exists):
    """Registers a gin file reader ahead of gin's own package-resource reader (after plain files).

    gin reads `include 'experiments/x.gin'` as "the file x.gin of the Python package `experiments`" before
    it asks the readers registered later; when any namespace package of that name is importable (a
    folder `experiments/` on sys.path, such as tools/experiments with tools/ on the path) its reader
    raises instead of passing. gin registers readers only at the end of its list."""
    from gin import config  # noqa: PLC0415

    config._FILE_READERS[:] = [entry for entry in config._FILE_READERS if entry[0] is not reader]
    config._FILE_READERS.insert(1, (reader, exists))


def registered_configurables():
    """The selectors ("sagan_tf.models.generator.Generator", ...) of every gin configurable, for
    suggesting a name; gin lists them nowhere publicly."""
    from gin import config  # noqa: PLC0415

    return [selector for selector, _ in config._REGISTRY.items()]


def import_tfgan_eval():
    """The `tensorflow_gan.python.eval` module (FID, Inception Score, ...).

    `import tensorflow_gan` fails on TensorFlow >= 2.16: its `__init__` imports the Estimator code,
    which needs the removed `tf.estimator`. The eval subpackage does not; it is imported here under
    empty `tensorflow_gan` and `tensorflow_gan.python` package modules whose `__path__` points at the
    installed folders, so Python finds the submodules and never runs the two parent `__init__`s."""
    name = "tensorflow_gan.python.eval"
    if name in sys.modules:
        return sys.modules[name]
    if "tensorflow_gan" not in sys.modules:
        spec = importlib.util.find_spec("tensorflow_gan")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("`tensorflow_gan` is not installed; install the pinned stack with "
                              "`pip install -r requirements.txt` (tensorflow-gan==2.1.0).")
        root = list(spec.submodule_search_locations)
        package = _empty_package("tensorflow_gan", root)
        package.python = _empty_package("tensorflow_gan.python", [os.path.join(p, "python") for p in root])
    return importlib.import_module(name)


def _empty_package(name, path):
    module = types.ModuleType(name)
    module.__path__ = path
    module.__package__ = name
    module.__sagan_tf_stub__ = True  # marks a package whose __init__ was deliberately skipped
    sys.modules[name] = module
    return module
