"""The networks' ReLU.

TensorFlow's CPU ReLU in bfloat16 converts every element to float32 and back. A bfloat16 number's sign is
its top bit, and among non-negative numbers the bit patterns order as the values do, so the maximum of the bit
patterns read as 16-bit integers and 0 is the ReLU: the same values, computed on integers at about twice the
speed, except at the edges (-0 gives +0; a NaN with the sign bit set gives 0 where TensorFlow's ReLU keeps the
NaN; a positive subnormal stays where TensorFlow's, which computes with denormals off, flushes it to 0). Its gradient is
TensorFlow's `ReluGrad`, as `tf.nn.relu`'s. Other dtypes use `keras.ops.relu`.
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
