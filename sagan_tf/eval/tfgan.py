"""The one place sagan_tf imports tensorflow-gan.

`import tensorflow_gan` fails on TensorFlow >= 2.16: the package `__init__` imports its Estimator
code, which needs the removed `tf.estimator`. The `tensorflow_gan.python.eval` subpackage (FID,
Inception Score, kernel distance, ...) does not need it. This module imports that subpackage
without running the two parent `__init__`s: it registers empty package modules for
`tensorflow_gan` and `tensorflow_gan.python` whose `__path__` points at the installed directories,
so Python finds the submodules but never executes the Estimator imports.

Usage: `from sagan_tf.eval.tfgan import tfgan_eval`; then `tfgan_eval.frechet_classifier_distance_from_activations(...)`.
"""

import importlib
import importlib.util
import os
import sys
import types


def _find_package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"`{name}` is not installed; install the pinned stack with "
            "`pip install -r requirements.txt` (tensorflow-gan==2.1.0)."
        )
    return list(spec.submodule_search_locations)


def _stub_package(name, path):
    module = types.ModuleType(name)
    module.__path__ = path
    module.__package__ = name
    module.__sagan_tf_stub__ = True  # marks a package whose __init__ was deliberately skipped
    sys.modules[name] = module
    return module


def import_tfgan_eval():
    """Returns the `tensorflow_gan.python.eval` module, importable on any TensorFlow 2.x."""
    name = "tensorflow_gan.python.eval"
    if name in sys.modules:
        return sys.modules[name]
    if "tensorflow_gan" not in sys.modules:
        root = _find_package_dir("tensorflow_gan")
        _stub_package("tensorflow_gan", root)
        _stub_package("tensorflow_gan.python", [os.path.join(p, "python") for p in root])
        sys.modules["tensorflow_gan"].python = sys.modules["tensorflow_gan.python"]
    return importlib.import_module(name)


tfgan_eval = import_tfgan_eval()
