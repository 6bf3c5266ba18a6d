"""Spectral normalisation of a layer's weight (Miyato et al., 2018), as SAGAN uses it.

Unlike `keras.layers.SpectralNormalization`, which overwrites the kernel with W / sigma and so
passes no gradient through sigma, this wrapper keeps the raw W as the trainable variable and
computes the layer's output with W / sigma(W) in the forward pass. Gradients flow through sigma
(the power-iteration vectors u, v are held constant), which is what the paper and its reference
code do.
"""

import keras
from keras import ops

from sagan_tf import compat
from sagan_tf.layers import conv_grad


def _l2_normalize(x, epsilon=1e-12):
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x)), epsilon))


def _dense_forward(layer, inputs, kernel, filter_gradient=None):
    outputs = ops.matmul(inputs, kernel)
    return _bias_and_activation(layer, outputs)


def _conv_forward(layer, inputs, kernel, filter_gradient="onednn"):
    if _plain_conv2d(layer):  # the filter gradient as matrix products where `filter_gradient` says (conv_grad)
        outputs = conv_grad.conv2d(inputs, kernel, filter_gradient)
    else:
        outputs = layer.convolution_op(inputs, kernel)
    return _bias_and_activation(layer, outputs)


def _plain_conv2d(layer):
    """A stride-1, undilated, ungrouped "same" Conv2D on channels-last data (every convolution of SAGAN)."""
    return (isinstance(layer, keras.layers.Conv2D) and tuple(layer.strides) == (1, 1)
            and tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1
            and layer.padding == "same" and layer.data_format == "channels_last")


def _conv_transpose_forward(layer, inputs, kernel, filter_gradient=None):
    outputs = ops.conv_transpose(
        inputs,
        kernel,
        strides=list(layer.strides),
        padding=layer.padding,
        output_padding=layer.output_padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
    )
    return _bias_and_activation(layer, outputs)


def _embedding_forward(layer, inputs, kernel, filter_gradient=None):
    if keras.backend.standardize_dtype(inputs.dtype) not in ("int32", "int64"):
        inputs = ops.cast(inputs, "int32")
    return ops.take(kernel, inputs, axis=0)


def _bias_and_activation(layer, outputs):
    if layer.use_bias:
        outputs = ops.add(outputs, ops.cast(layer.bias, outputs.dtype))
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


# (layer class, name of the weight attribute, forward function, kernel axis of the outputs).
_SUPPORTED = (
    (keras.layers.Conv2DTranspose, "kernel", _conv_transpose_forward, -2),
    (keras.layers.Conv1D, "kernel", _conv_forward, -1),
    (keras.layers.Conv2D, "kernel", _conv_forward, -1),
    (keras.layers.Conv3D, "kernel", _conv_forward, -1),
    (keras.layers.Dense, "kernel", _dense_forward, -1),
    (keras.layers.Embedding, "embeddings", _embedding_forward, -1),
)


def _lookup(layer):
    for cls, attribute, forward, out_axis in _SUPPORTED:
        if isinstance(layer, cls):
            return attribute, forward, out_axis
    names = ", ".join(cls.__name__ for cls, *_ in _SUPPORTED)
    raise ValueError(
        f"SpectralNormalization supports {names}. Received: `layer={type(layer).__name__}`"
    )


@keras.saving.register_keras_serializable(package="sagan_tf")
class SpectralNormalization(keras.layers.Wrapper):
    """Wraps a Dense, Conv or Embedding layer so that it computes with W / sigma(W).

    sigma(W) is the largest singular value of the weight, reshaped to a matrix of shape
    [fan_in, out] (output channels as columns; for Conv2DTranspose the kernel's
    [h, w, out, in] is transposed first, for Embedding the [vocab, dim] table is used as is).
    It is estimated by `power_iterations` steps of the power method with a persistent,
    non-trainable vector u of shape [1, out], as in Miyato et al. (2018), "Spectral
    Normalization for Generative Adversarial Networks", and SAGAN (Zhang et al., 2019), which
    applies it to every weight of G and D.

    - Training calls (`training=True`) run the power iteration and write the new u; inference
      calls use the stored u's direction (normalised) and leave it unchanged; `refresh` sets u by
      more iterations (the EMA generator's sync).
    - u and v enter sigma through a stop-gradient, so d loss / d W includes the term through
      sigma (the gradient of the loss of W / sigma(W) with u frozen).
    - The iteration runs in float32 under mixed precision; the normalised weight is then cast to
      the layer's compute dtype.
    - Under `tf.distribute`, every replica computes the same u from identical W and u; the
      variable's aggregation is "mean", so the replicas stay identical.
    - `sigma` (non-trainable, shape []) holds the last estimate of sigma(W) for summaries.

    Args:
        layer: an unbuilt or built `keras.layers.Dense`, `Conv1D/2D/3D`, `Conv2DTranspose` or
            `Embedding`.
        power_iterations: int >= 1, power-method steps per training call.
        epsilon: small float guarding the normalisation of u and v.
        filter_gradient: how a wrapped stride-1 "same" Conv2D takes its filter gradient: "onednn"
            (TensorFlow's kernel), "matmul" (matrix products) or a rule list of the shapes that take matrix
            products (`sagan_tf.layers.conv_grad`; the hardware policy `sagan_tf.machine.network_settings` picks one).

    Input and output shapes are those of the wrapped layer.
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, filter_gradient="onednn", **kwargs):
        super().__init__(layer, **kwargs)
        if not isinstance(power_iterations, int) or power_iterations < 1:
            raise ValueError(
                "`power_iterations` must be an integer >= 1. "
                f"Received: `power_iterations={power_iterations}`"
            )
        if epsilon <= 0:
            raise ValueError(f"`epsilon` must be positive. Received: `epsilon={epsilon}`")
        self.filter_gradient = conv_grad.check_filter_gradient(filter_gradient)  # raises before any state
        self._attribute, self._forward, self._out_axis = _lookup(layer)
        self.power_iterations = power_iterations
        self.epsilon = epsilon

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel = self.kernel
        shape = tuple(kernel.shape)
        self._out_dim = int(shape[self._out_axis])
        self.u = self.add_weight(
            name="u",
            shape=(1, self._out_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            dtype="float32",
            aggregation="mean",
            autocast=False,
        )
        self.sigma = self.add_weight(
            name="sigma",
            shape=(),
            initializer="ones",
            trainable=False,
            dtype="float32",
            aggregation="mean",
            autocast=False,
        )
        self.built = True

    @property
    def kernel(self):
        """The raw (unnormalised) weight variable of the wrapped layer."""
        return getattr(self.layer, self._attribute)

    def _kernel_float32(self):
        with compat.no_autocast():  # the float32 weight itself, not its compute-dtype copy
            return ops.cast(ops.convert_to_tensor(self.kernel), "float32")

    def _as_matrix(self, w):
        if self._out_axis != -1:
            axes = list(range(len(w.shape)))
            axes[self._out_axis], axes[-1] = axes[-1], axes[self._out_axis]
            w = ops.transpose(w, axes)
        return ops.reshape(w, (-1, self._out_dim))

    def power_iteration(self, w_matrix, u, iterations=None):
        """Returns (sigma, u_new) for a [fan_in, out] matrix and u of shape [1, out] (`iterations`: default
        `power_iterations`)."""
        v = None
        for _ in range(self.power_iterations if iterations is None else iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(w_matrix)), self.epsilon)
            u = _l2_normalize(ops.matmul(v, w_matrix), self.epsilon)
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(v)
        sigma = ops.sum(ops.matmul(v, w_matrix) * u)
        return sigma, u

    def normalized_kernel(self, training=False):
        """W / sigma(W) in float32; updates u (and `sigma`) only when `training` is true."""
        w = self._kernel_float32()
        u = ops.convert_to_tensor(self.u)
        if training:
            sigma, u_new = self.power_iteration(self._as_matrix(w), u)
            self.u.assign(u_new)
            self.sigma.assign(ops.stop_gradient(sigma))
        else:
            # Inference: sigma = v W u^T from the stored u, normalised (an average of u vectors, such as an
            # EMA generator's, is shorter than 1) and not updated.
            w_matrix = self._as_matrix(w)
            u = _l2_normalize(u, self.epsilon)
            v = ops.stop_gradient(_l2_normalize(ops.matmul(u, ops.transpose(w_matrix)), self.epsilon))
            sigma = ops.sum(ops.matmul(v, w_matrix) * u)
        return w / sigma

    def refresh(self, iterations):
        """Sets u and `sigma` by `iterations` power iterations on the current kernel from u's direction: for a
        kernel that u was not iterated on, such as an EMA generator's average of the trained kernels."""
        sigma, u = self.power_iteration(self._as_matrix(self._kernel_float32()),
                                        _l2_normalize(ops.convert_to_tensor(self.u), self.epsilon), iterations)
        self.u.assign(u)
        self.sigma.assign(sigma)

    def call(self, inputs, training=False, convolution=None):
        """`convolution(inputs, kernel)`, if given, replaces the wrapped layer's own product with its
        kernel (the blocks' convolutions fused with resampling: `sagan_tf.layers.resampling`); it gets the
        float32 kernel and computes in the inputs' dtype."""
        kernel = self.normalized_kernel(training=bool(training))
        if convolution is not None:
            return _bias_and_activation(self.layer, convolution(inputs, kernel))
        return self._forward(self.layer, inputs, ops.cast(kernel, self.compute_dtype), self.filter_gradient)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"power_iterations": self.power_iterations, "epsilon": self.epsilon,
                       "filter_gradient": conv_grad.serialize_filter_gradient(self.filter_gradient)})
        return config


def spectral_norm_layers(layer):
    """Every built `SpectralNormalization` in `layer` (itself included) that owns a weight of `layer`."""
    owned = {id(w) for w in layer.weights}
    return [sub for sub in compat.sublayers(layer)
            if isinstance(sub, SpectralNormalization) and id(getattr(sub, "u", None)) in owned]


def maybe_spectral_norm(layer, enabled, **kwargs):
    """Returns `SpectralNormalization(layer, **kwargs)` if `enabled`, else `layer` itself.

    The wrapper takes the layer's dtype policy and is named `<layer name>_sn` unless told otherwise.
    """
    if not enabled:
        return layer
    kwargs.setdefault("dtype", layer.dtype_policy)
    kwargs.setdefault("name", f"{layer.name}_sn")
    return SpectralNormalization(layer, **kwargs)


def convolve(layer, inputs, convolution, training=False):
    """Applies `layer`, a convolution or `SpectralNormalization` of one (as `maybe_spectral_norm` returns
    it), with `convolution(inputs, kernel)` in place of its own convolution op, then its bias.
    `convolution` computes in the dtype of the inputs, which are cast to the layer's compute dtype."""
    if isinstance(layer, SpectralNormalization):
        return layer(inputs, training=training, convolution=convolution)
    return _bias_and_activation(layer, convolution(ops.cast(inputs, layer.compute_dtype), layer.kernel))
