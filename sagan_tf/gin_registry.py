"""Importing this module registers every gin configurable of the package, so that any gin file of
gin/ and any run's operative config parse. The CLIs and tools that read whole configs import it; the
library's own modules do not (each registers its own configurables when imported).
"""

import sagan_tf.configurables  # noqa: F401  (the Keras optimizers)
import sagan_tf.data  # noqa: F401  (the sources and build_input)
import sagan_tf.eval.periodic  # noqa: F401  (evaluation_input)
import sagan_tf.eval.evaluator  # noqa: F401  (Evaluator)
import sagan_tf.eval.classifiers  # noqa: F401  (get_classifier)
import sagan_tf.models.factory  # noqa: F401  (Generator, Discriminator, SAGAN)
import sagan_tf.trainer  # noqa: F401  (train)
