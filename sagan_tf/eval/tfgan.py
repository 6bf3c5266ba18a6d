"""The one place sagan_tf imports tensorflow-gan.

`import tensorflow_gan` fails on TensorFlow >= 2.16 (its `__init__` imports the removed
`tf.estimator`); its `tensorflow_gan.python.eval` subpackage (FID, Inception Score, kernel distance,
...) works. `sagan_tf.compat.import_tfgan_eval` imports that subpackage alone.

Usage: `from sagan_tf.eval.tfgan import tfgan_eval`; then `tfgan_eval.frechet_classifier_distance_from_activations(...)`.
"""

from sagan_tf.compat import import_tfgan_eval

__all__ = ["import_tfgan_eval", "tfgan_eval"]

tfgan_eval = import_tfgan_eval()
