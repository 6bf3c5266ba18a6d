"""Adam whose update is TensorFlow's fused kernel: the optimiser of the configs (gin/base.gin, TTUR).

`FusedAdam` is `keras.optimizers.Adam` (the same arguments, slot variables, checkpoint layout, config and
update formula: m += (1 - beta_1)(g - m), v += (1 - beta_2)(g^2 - v),
w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon)) with one change: each variable's update
is a single `ResourceApplyAdam` op instead of the twenty-odd ops Keras builds for it. The train step's
graph is smaller, which shortens the start of a run (tracing and graph optimisation), most under
MirroredStrategy, where each update is built once per replica; the update is one pass over each variable.
Results equal Keras's to float rounding (tests/test_optimizers.py). `amsgrad=True` takes Keras's own update.
Keras adds epsilon before the bias correction of v, PyTorch after it: a step with epsilon e here is
`torch.optim.Adam`'s with epsilon e / sqrt(1 - beta_2^t) (tested).
"""

import keras
import tensorflow as tf
from keras import ops

from sagan_tf import compat


@keras.saving.register_keras_serializable(package="sagan_tf")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` computed by TensorFlow's fused `ResourceApplyAdam` kernel (module docstring)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        momentum, velocity = compat.adam_slots(self, variable)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=momentum.handle, v=velocity.handle,
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(ops.convert_to_tensor(gradient), dtype))
        return None
