"""The networks' ReLU.

In bfloat16 it is computed on the numbers' bit patterns: a bfloat16 number's sign is its top bit, and among
non-negative numbers the bit patterns order as the values do, so the maximum of the patterns read as 16-bit
integers and 0 is the ReLU. The values are TensorFlow's ReLU's except at the edges: -0 gives +0, a NaN with the
sign bit set gives 0 (TensorFlow's keeps the NaN), and a positive subnormal number stays, which TensorFlow's
ReLU may flush to 0 (tests/test_activations.py). The gradient is TensorFlow's `ReluGrad` of
the output, as `tf.nn.relu`'s. The two-CPU-hour recipe's iteration timed with and without it:
docs/performance.md. Other dtypes use `keras.ops.relu`.
"""

import tensorflow as tf
from keras import ops


def relu(x):
    """max(x, 0), elementwise (module docstring)."""
    if x.dtype != tf.bfloat16:
        return ops.relu(x)
    return _bfloat16_relu(x)


@tf.custom_gradient
def _bfloat16_relu(x):
    bits = tf.bitcast(x, tf.int16)
    y = tf.bitcast(tf.maximum(bits, tf.zeros([], tf.int16)), tf.bfloat16)

    def grad(dy):
        return tf.raw_ops.ReluGrad(gradients=dy, features=y)

    return y, grad
