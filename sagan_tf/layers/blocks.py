"""Residual up- and down-sampling blocks of SAGAN's generator and discriminator.

The block structure is that of the SN-GAN projection networks (Miyato & Koyama, 2018) that SAGAN
builds on, as in the authors' released code and BigGAN-PyTorch.
"""

import functools

import keras
from keras import ops

from sagan_tf.layers.activations import relu
from sagan_tf.layers.normalization import ConditionalBatchNorm
from sagan_tf.layers import conv_grad, initializers, resampling
from sagan_tf.layers.resampling import downsample_average, upsample_nearest  # noqa: F401  (public here too)
from sagan_tf.layers.spectral_norm import convolve, maybe_spectral_norm


class _ConvBlock(keras.layers.Layer):
    """Shared constructor arguments, the spectrally normalised convolution factory and the resampling
    convolutions as the arguments `fused_resampling` and `filter_gradient` fix them."""

    def __init__(
        self, out_channels, use_spectral_norm=True, kernel_initializer="glorot_uniform", fused_resampling=True,
        filter_gradient="onednn", bias_initialization="zeros", **kwargs
    ):
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(
                f"`out_channels` must be a positive int. Received: `out_channels={out_channels}`"
            )
        if not isinstance(fused_resampling, bool):
            raise ValueError(
                f"`fused_resampling` must be True or False. Received: `fused_resampling={fused_resampling!r}`"
            )
        filter_gradient = conv_grad.check_filter_gradient(filter_gradient)
        initializers.check_bias_initialization(bias_initialization)
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.use_spectral_norm = use_spectral_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initialization = bias_initialization
        self.fused_resampling = fused_resampling
        self.filter_gradient = filter_gradient
        # the block's resampling convolutions, fixed here (sagan_tf.layers.resampling)
        settings = dict(fused=fused_resampling, filter_gradient=filter_gradient)
        self._upsample_conv2d = functools.partial(resampling.upsample_conv2d, **settings)
        self._conv2d_downsample = functools.partial(resampling.conv2d_downsample, **settings)

    def _conv(self, kernel_size, in_channels, name):
        conv = keras.layers.Conv2D(
            self.out_channels,
            kernel_size,
            padding="same",
            kernel_initializer=initializers.fresh(self.kernel_initializer),
            bias_initializer=initializers.bias(self.bias_initialization, kernel_size * kernel_size * in_channels),
            dtype=self.dtype_policy,
            name=name,
        )
        return maybe_spectral_norm(conv, self.use_spectral_norm, filter_gradient=self.filter_gradient)

    def _output_shape(self, input_shape, factor):
        return (
            input_shape[0],
            _times(input_shape[1], factor),
            _times(input_shape[2], factor),
            self.out_channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "out_channels": self.out_channels,
                "use_spectral_norm": self.use_spectral_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initialization": self.bias_initialization,
                "fused_resampling": self.fused_resampling,
                "filter_gradient": conv_grad.serialize_filter_gradient(self.filter_gradient),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="sagan_tf")
class GeneratorBlock(_ConvBlock):
    """cBN, ReLU, (2x nearest upsample), 3x3 conv, cBN, ReLU, 3x3 conv, plus a shortcut.

    The shortcut is (upsample, then) a 1x1 convolution when the channels change or the block
    upsamples, else the identity. With `fused_resampling`, upsampling and the convolution after it
    run as one smaller convolution with the same result (`sagan_tf.layers.resampling`).

    Args:
        out_channels: output channels.
        num_classes: classes of the conditional batch norms (0 = unconditional).
        upsample: double the spatial size.
        use_spectral_norm: spectrally normalise the convolutions.
        kernel_initializer: convolution initializer.
        bias_initialization: the convolutions' biases at the start, "zeros" or "fan_in_uniform"
            (`sagan_tf.layers.initializers.bias`).
        bn_momentum, bn_epsilon: batch-norm settings.
        bn_initialization: the conditional batch norms' gains and biases at the start, "unit" or
            "biggan" (see `ConditionalBatchNorm`).
        bn_fused: the conditional batch norms' training calls in TensorFlow's fused op (their `fused`).
        fused_resampling: compute the resampling convolutions in their fused form (fewer products,
            the same result); False: the plain compositions.
        filter_gradient: "onednn", "matmul" or a rule list: how the convolutions take their filter
            gradients (`sagan_tf.layers.conv_grad`; the hardware policy `sagan_tf.machine.network_settings` picks one).

    Call arguments: `inputs` [B, H, W, C_in], `labels` int [B] (ignored if unconditional).
    Output shape: [B, 2H, 2W, out_channels] (or [B, H, W, out_channels] without upsampling).
    """

    def __init__(
        self,
        out_channels,
        num_classes=0,
        upsample=True,
        use_spectral_norm=True,
        kernel_initializer="glorot_uniform",
        bn_momentum=0.99,
        bn_epsilon=1e-5,
        bn_initialization="unit",
        fused_resampling=True,
        filter_gradient="onednn",
        bias_initialization="zeros",
        bn_fused=False,
        **kwargs,
    ):
        super().__init__(out_channels, use_spectral_norm, kernel_initializer, fused_resampling, filter_gradient,
                         bias_initialization, **kwargs)
        self.num_classes = num_classes
        self.upsample = upsample
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.bn_initialization = bn_initialization
        self.bn_fused = bn_fused

    def build(self, inputs_shape, labels_shape=None):
        input_shape = inputs_shape
        in_channels = int(input_shape[-1])
        bn_args = dict(momentum=self.bn_momentum, epsilon=self.bn_epsilon, initialization=self.bn_initialization,
                       fused=self.bn_fused, dtype=self.dtype_policy)
        self.bn1 = ConditionalBatchNorm(self.num_classes, name="bn1", **bn_args)
        self.bn2 = ConditionalBatchNorm(self.num_classes, name="bn2", **bn_args)
        self.conv1 = self._conv(3, in_channels, "conv1")
        self.conv2 = self._conv(3, self.out_channels, "conv2")
        self.shortcut = None
        if in_channels != self.out_channels or self.upsample:
            self.shortcut = self._conv(1, in_channels, "shortcut")
        factor = 2 if self.upsample else 1
        upsampled = (input_shape[0], _times(input_shape[1], factor), _times(input_shape[2], factor))
        self.bn1.build(input_shape)
        self.conv1.build((*upsampled, in_channels))
        self.bn2.build((*upsampled, self.out_channels))
        self.conv2.build((*upsampled, self.out_channels))
        if self.shortcut is not None:
            self.shortcut.build((*upsampled, in_channels))
        self.built = True

    def call(self, inputs, labels=None, training=None):
        x = relu(self.bn1(inputs, labels, training=training))
        if self.upsample:  # upsampling and convolution in one (sagan_tf.layers.resampling)
            x = convolve(self.conv1, x, self._upsample_conv2d, training=training)
        else:
            x = self.conv1(x, training=training)
        x = relu(self.bn2(x, labels, training=training))
        x = self.conv2(x, training=training)
        shortcut = inputs
        if self.upsample:  # (an upsampling block always has a shortcut convolution)
            shortcut = convolve(self.shortcut, inputs, self._upsample_conv2d, training=training)
        elif self.shortcut is not None:
            shortcut = self.shortcut(inputs, training=training)
        return x + shortcut

    def compute_output_shape(self, input_shape, labels_shape=None):
        return self._output_shape(input_shape, 2 if self.upsample else 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "upsample": self.upsample,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
                "bn_initialization": self.bn_initialization,
                "bn_fused": self.bn_fused,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="sagan_tf")
class DiscriminatorBlock(_ConvBlock):
    """Pre-activation residual block of the discriminator.

    Standard: ReLU, 3x3 conv, ReLU, 3x3 conv, (2x2 average pool); shortcut 1x1 conv then pool
    when the channels change or the block downsamples, else the identity.
    Optimised (the first block, on images): 3x3 conv, ReLU, 3x3 conv, average pool; shortcut
    average pool then 1x1 conv. It always downsamples. With `fused_resampling`, the pooling and the
    convolution before it run as one smaller convolution with the same result
    (`sagan_tf.layers.resampling`).

    Args:
        out_channels: output channels.
        downsample: halve the spatial size (forced True for the optimised block).
        optimized: build the optimised first block.
        use_spectral_norm: spectrally normalise the convolutions.
        kernel_initializer: convolution initializer.
        fused_resampling, filter_gradient, bias_initialization: as for `GeneratorBlock`.

    Input shape: [B, H, W, C_in]. Output shape: [B, H/2, W/2, out_channels] (or [B, H, W, ...]).
    """

    def __init__(
        self,
        out_channels,
        downsample=True,
        optimized=False,
        use_spectral_norm=True,
        kernel_initializer="glorot_uniform",
        fused_resampling=True,
        filter_gradient="onednn",
        bias_initialization="zeros",
        **kwargs,
    ):
        super().__init__(out_channels, use_spectral_norm, kernel_initializer, fused_resampling, filter_gradient,
                         bias_initialization, **kwargs)
        if optimized and not downsample:
            raise ValueError(
                "The optimised first discriminator block always downsamples. "
                f"Received: `optimized={optimized}`, `downsample={downsample}`"
            )
        self.downsample = downsample
        self.optimized = optimized

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        self.conv1 = self._conv(3, in_channels, "conv1")
        self.conv2 = self._conv(3, self.out_channels, "conv2")
        self.shortcut = None
        if self.optimized or in_channels != self.out_channels or self.downsample:
            self.shortcut = self._conv(1, in_channels, "shortcut")
        self.conv1.build(input_shape)
        self.conv2.build((*input_shape[:3], self.out_channels))
        if self.shortcut is not None:
            if self.optimized:
                pooled = (input_shape[0], _times(input_shape[1], 0.5), _times(input_shape[2], 0.5))
                self.shortcut.build((*pooled, in_channels))
            else:
                self.shortcut.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs if self.optimized else relu(inputs)
        x = self.conv1(x, training=training)
        if self.downsample:  # convolution and pooling in one (sagan_tf.layers.resampling)
            x = convolve(self.conv2, relu(x), self._conv2d_downsample, training=training)
        else:
            x = self.conv2(relu(x), training=training)
        shortcut = inputs
        if self.downsample:  # (a downsampling block always has a shortcut convolution)
            # pooled first, as the optimised block specifies; for the standard block, which convolves
            # first, that is the same (both are linear and the bias passes the average unchanged)
            shortcut = convolve(self.shortcut, inputs, self._conv2d_downsample, training=training)
        elif self.shortcut is not None:
            shortcut = self.shortcut(inputs, training=training)
        return x + shortcut

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape, 0.5 if self.downsample else 1)

    def get_config(self):
        config = super().get_config()
        config.update({"downsample": self.downsample, "optimized": self.optimized})
        return config


def _times(size, factor):
    return None if size is None else int(size * factor)
