"""Class-conditional batch normalisation (de Vries et al., 2017; Miyato & Koyama, 2018)."""

import keras
import tensorflow as tf
from keras import ops

from sagan_tf.layers import initializers

INITIALIZATIONS = ("unit", "biggan")


def fusable(inputs):
    """Whether a training call may normalise `inputs` with TensorFlow's fused batch-norm op: images
    [B, H, W, C] of a dtype the op takes, on one replica (the op cannot sum its statistics across replicas)."""
    replica = tf.distribute.get_replica_context()  # None in a cross-replica context: no all-reduce there either
    one_replica = replica is None or replica.num_replicas_in_sync == 1
    return (one_replica and len(inputs.shape) == 4 and inputs.shape[-1] is not None
            and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16))


def fused_training_normalization(norm, inputs, scale=None, offset=None, momentum=None):
    """A training step of the Keras batch norm `norm` in TensorFlow's FusedBatchNormV3 (for `fusable` inputs):
    `(x - mean) / sqrt(var + epsilon) * scale + offset` with the batch's statistics, computed in float32 inside
    the op and returned in the dtype of `inputs`, its gradient one op too. `scale` and `offset` are float32 per
    channel (None: 1 and 0). Updates `norm`'s moving mean and variance by `momentum` (None: `norm`'s), with the
    biased variance, as Keras' batch norm does (the op returns the Bessel-corrected one)."""
    channels = inputs.shape[-1]
    scale = tf.ones([channels]) if scale is None else tf.cast(scale, tf.float32)
    offset = tf.zeros([channels]) if offset is None else tf.cast(offset, tf.float32)
    empty = tf.constant([], tf.float32)
    outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=norm.epsilon,
        exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
    count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
    variance = variance * tf.math.divide_no_nan(count - 1.0, count)
    momentum = norm.momentum if momentum is None else momentum
    norm.moving_mean.assign(norm.moving_mean * momentum + mean * (1.0 - momentum))
    norm.moving_variance.assign(norm.moving_variance * momentum + variance * (1.0 - momentum))
    return outputs


@keras.saving.register_keras_serializable(package="sagan_tf")
class ConditionalBatchNorm(keras.layers.Layer):
    """Batch normalisation whose gain and bias are looked up per class.

        y = gain[label] * (x - mean) / sqrt(var + epsilon) + bias[label]

    as in SAGAN's generator. The statistics are those of the global batch: under a
    `tf.distribute` strategy they are summed across replicas (Keras' synchronized batch norm).
    With `num_classes=0` the layer is an ordinary batch norm with a learned gain and bias and the
    labels are ignored.

    The normalisation and the per-class gain and bias are applied as one scale and one shift,
    `y = x * s + t` with `s = gain[label] / sqrt(var + epsilon)` and `t = bias[label] - mean * s`, and the
    count of the statistics comes from the shape: two element-wise passes over the activations where
    normalising and then scaling take four (and Keras' synchronized statistics add a tensor of ones).
    The statistics and the moving averages are Keras' BatchNormalization's (its variables, kept in
    the sublayer `batch_norm`, and its update rule), computed in float32 under a mixed policy (the
    gain and bias are read in the compute dtype, as Keras reads a layer's weights).

    With `fused=True`, a training call on one replica normalises images in TensorFlow's fused batch-norm op
    (`fused_training_normalization`: the statistics in float32 inside it, one op forward and one backward),
    then applies the class's gain and bias in the compute dtype: faster on CPUs, and the same result in
    float32 up to rounding, but under a mixed policy the output is rounded to the compute dtype three times
    (normalised, scaled, shifted) where the unfused path rounds once. Inference, several replicas and other
    inputs take the unfused path.

    Args:
        num_classes: number of classes (0 for unconditional).
        momentum: moving-statistics momentum.
        epsilon: variance epsilon.
        synchronized: compute statistics over all replicas (True for the paper's global batch).
        initialization: "unit": every class starts at gain 1 and bias 0; "biggan": gain 1 + a
            Glorot-uniform draw and a Glorot-uniform bias per class (BigGAN-PyTorch's embeddings,
            xavier-initialised, with `gain = 1 + embedding(y)`).
        fused: normalise training calls in the fused op where it applies (above).

    Call arguments: `inputs` [B, H, W, C] (or [B, C]) and `labels` int [B].
    Output shape: that of `inputs`.
    """

    def __init__(self, num_classes, momentum=0.99, epsilon=1e-5, synchronized=True, initialization="unit",
                 fused=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(
                f"`num_classes` must be an int >= 0. Received: `num_classes={num_classes}`"
            )
        if initialization not in INITIALIZATIONS:
            raise ValueError(f"`initialization` must be one of {INITIALIZATIONS}. "
                             f"Received: `initialization={initialization!r}`")
        if not isinstance(fused, bool):
            raise ValueError(f"`fused` must be True or False. Received: `fused={fused!r}`")
        self.initialization = initialization
        self.fused = fused
        self.num_classes = num_classes
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized
        self.batch_norm = keras.layers.BatchNormalization(
            momentum=momentum,
            epsilon=epsilon,
            center=False,
            scale=False,
            synchronized=synchronized,
            dtype=self.dtype_policy,
            name="batch_norm",
        )

    def build(self, inputs_shape, labels_shape=None):
        input_shape = inputs_shape
        channels = int(input_shape[-1])
        self.batch_norm.build(input_shape)
        rows = max(self.num_classes, 1)
        gain, bias = "ones", "zeros"
        if self.initialization == "biggan" and self.num_classes:
            gain, bias = initializers.OnePlus(initializers.fresh("glorot_uniform")), initializers.fresh("glorot_uniform")
        self.gain = self.add_weight(name="gain", shape=(rows, channels), initializer=gain)
        self.bias = self.add_weight(name="bias", shape=(rows, channels), initializer=bias)
        self.built = True

    def call(self, inputs, labels=None, training=None):
        if self.num_classes == 0:
            gain, bias = self.gain[0], self.bias[0]
        else:
            if labels is None:
                raise ValueError(
                    f"ConditionalBatchNorm with num_classes={self.num_classes} needs `labels`."
                )
            labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
            gain = ops.take(self.gain, labels, axis=0)
            bias = ops.take(self.bias, labels, axis=0)
            broadcast = (-1,) + (1,) * (len(inputs.shape) - 2) + (gain.shape[-1],)
            gain, bias = ops.reshape(gain, broadcast), ops.reshape(bias, broadcast)
        if self.fused and training and self.batch_norm.trainable and fusable(inputs):
            outputs = fused_training_normalization(self.batch_norm, inputs, momentum=self.momentum)
            return outputs * ops.cast(gain, outputs.dtype) + ops.cast(bias, outputs.dtype)
        # as Keras' batch norm: the statistics and the normalisation in float32 (or wider) under a mixed policy
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, dtype)
        norm = self.batch_norm
        moving_mean, moving_variance = ops.cast(norm.moving_mean, dtype), ops.cast(norm.moving_variance, dtype)
        if training and norm.trainable:
            mean, variance = self._moments(x)
            norm.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            norm.moving_variance.assign(moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean, variance = moving_mean, moving_variance
        scale = ops.cast(gain, dtype) * ops.rsqrt(variance + self.epsilon)
        shift = ops.cast(bias, dtype) - mean * scale
        return ops.cast(x * scale + shift, self.compute_dtype)

    def _moments(self, x):
        """Mean and (biased) variance over all axes but the last. Synchronized, as Keras' synchronized batch
        norm: E[x^2] - E[x]^2 of the global batch (one all-reduce of the sums, the sums of squares and the
        count); else `tf.nn.moments` of the local batch, as Keras' batch norm."""
        axes = list(range(len(x.shape) - 1))
        if not self.synchronized:
            return tf.nn.moments(x, axes)
        total = ops.sum(x, axis=axes)
        squares = ops.sum(ops.square(x), axis=axes)
        count = ops.cast(ops.prod(ops.take(ops.shape(x), axes)), x.dtype)
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            channels = total.shape[-1]
            sums = replica.all_reduce(tf.distribute.ReduceOp.SUM,
                                      ops.concatenate([total, squares, ops.reshape(count, (1,))], axis=0))
            total, squares, count = sums[:channels], sums[channels:2 * channels], sums[-1]
        mean = ops.divide_no_nan(total, count)  # (an empty batch: zeros, as Keras')
        return mean, ops.maximum(ops.divide_no_nan(squares, count) - ops.square(mean), 0.0)

    def compute_output_shape(self, input_shape, labels_shape=None):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "synchronized": self.synchronized,
                "initialization": self.initialization,
                "fused": self.fused,
            }
        )
        return config
