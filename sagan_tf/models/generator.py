"""SAGAN's class-conditional residual generator with self-attention."""

import keras
from keras import ops

from sagan_tf import configurables
from sagan_tf.layers.activations import relu
from sagan_tf.layers.blocks import GeneratorBlock
from sagan_tf.layers import initializers, normalization
from sagan_tf.layers.spectral_norm import maybe_spectral_norm
from sagan_tf.models import common

# Channel multipliers of the 4x4 input and of each up-block's output, per image resolution
# (BigGAN-PyTorch's tables; 128 is SAGAN's ImageNet generator: 16, 16, 8, 4, 2, 1 x 64).
GENERATOR_CHANNELS = {
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}


@configurables.configurable
@keras.saving.register_keras_serializable(package="sagan_tf")
class Generator(common.Network):
    """z (and a class label) -> image in [-1, 1].

    z -> spectrally normalised linear layer to 4 x 4 x (m_0 * base_channels) -> one residual
    up-block per doubling (class-conditional batch norm, output channels m_i * base_channels), with
    self-attention after the blocks whose output resolution is in `attention_resolutions` -> batch
    norm, ReLU, 3x3 conv to `out_channels`, tanh.

    The defaults are the paper's ImageNet 128x128 generator: dim_z 128, base_channels 64,
    multipliers 16, 16, 8, 4, 2, 1, 1000 classes, attention at the 32x32 feature map, spectral
    norm on every layer, Xavier (Glorot) initialisation as in the released code.

    Args:
        resolution: output size, a power of two >= 16 (defaults for 32, 64, 128, 256).
        num_classes: number of classes; 0 for an unconditional generator.
        dim_z: latent size.
        base_channels: channel width "ch".
        channel_multipliers: None for the resolution's default, else log2(resolution/4) + 1 ints.
        attention_resolutions: feature-map sizes after which to place self-attention (any subset
            of the up-blocks' output sizes; empty for none).
        attention_style: "official" (released code: pooled keys/values, C/2 values, output conv)
            or "paper" (equations 1-3 as printed).
        attention_block_size: None, or the query block size of the memory-bounded attention.
        use_spectral_norm: spectral norm on every weight (the paper's choice for G).
        out_channels: image channels (3 for RGB, 1 for grayscale).
        kernel_initializer: weight initializer ("glorot_uniform"; "orthogonal" is BigGAN's).
        bn_momentum, bn_epsilon: batch-norm settings (Keras momentum: 0.99 keeps 99% of the moving
            statistics per update; PyTorch's momentum 0.1 is Keras's 0.9).
        bn_initialization: the conditional batch norms' starting gains and biases, "unit" (1 and 0)
            or "biggan" (BigGAN-PyTorch's; see `ConditionalBatchNorm`).
        bn_fused: every batch norm's training call on one replica in TensorFlow's fused batch-norm op
            (`ConditionalBatchNorm`'s `fused`; the output batch norm applies its gain and bias inside the op):
            faster, the same result in float32 up to rounding, rounded more often under a mixed policy.
        fused_resampling: the blocks' upsampling convolutions in their fused form (fewer products, the
            same result; `sagan_tf.layers.resampling`); False: upsample, then convolve.
        filter_gradient: how the convolutions take their filter gradients: "onednn" (TensorFlow's
            kernels), "matmul" (matrix products) or a rule list of the shapes that take matrix products
            (`sagan_tf.layers.conv_grad`). The train command binds the hardware policy's choice
            (`sagan_tf.machine.network_settings`, `--filter_gradient`) unless the config binds one.
        bias_initialization: the convolution and linear biases at the start: "zeros", or
            "fan_in_uniform" (uniform on +-1/sqrt(fan_in), PyTorch's default, which BigGAN-PyTorch keeps).

    Call arguments: `z` float [B, dim_z]; `labels` int [B] (required if conditional);
    `return_attention`: also return {layer name: attention map [B, N, N_key]}.
    Output: float32 images [B, resolution, resolution, out_channels] in [-1, 1].
    """

    def __init__(
        self,
        resolution=128,
        num_classes=1000,
        dim_z=128,
        base_channels=64,
        channel_multipliers=None,
        attention_resolutions=(32,),
        attention_style="official",
        attention_block_size=None,
        use_spectral_norm=True,
        out_channels=3,
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
        kwargs.setdefault("name", "generator")
        super().__init__(**kwargs)
        hardware_settings = self._set_hardware_settings(fused_resampling, filter_gradient)
        num_blocks = common.check_resolution(resolution, GENERATOR_CHANNELS)
        multipliers = tuple(channel_multipliers or GENERATOR_CHANNELS.get(resolution, ()))
        if len(multipliers) != num_blocks + 1:
            raise ValueError(
                f"A {resolution}x{resolution} generator needs {num_blocks + 1} channel multipliers "
                f"(the 4x4 input and {num_blocks} up-blocks). "
                f"Received: `channel_multipliers={channel_multipliers}`"
            )
        block_resolutions = [4 * 2 ** (i + 1) for i in range(num_blocks)]
        self._set_common("generator", resolution, num_classes, base_channels, multipliers, block_resolutions,
                         attention_resolutions, attention_style, attention_block_size, use_spectral_norm,
                         kernel_initializer, bias_initialization)
        self.dim_z = dim_z
        self.out_channels = out_channels
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.bn_initialization = bn_initialization
        if not isinstance(bn_fused, bool):
            raise ValueError(f"`bn_fused` must be True or False. Received: `bn_fused={bn_fused!r}`")
        self.bn_fused = bn_fused

        dtype = self.dtype_policy
        self._initial_channels = multipliers[0] * base_channels
        self.linear = maybe_spectral_norm(
            keras.layers.Dense(
                4 * 4 * self._initial_channels,
                kernel_initializer=initializers.fresh(self.kernel_initializer),
                bias_initializer=initializers.bias(bias_initialization, dim_z),
                dtype=dtype,
                name="linear",
            ),
            use_spectral_norm,
        )
        self.blocks, self.attention_layers = [], []
        for i, (multiplier, size) in enumerate(zip(multipliers[1:], block_resolutions)):
            self.blocks.append(
                GeneratorBlock(
                    multiplier * base_channels,
                    num_classes=num_classes,
                    use_spectral_norm=use_spectral_norm,
                    kernel_initializer=self.kernel_initializer,
                    bn_momentum=bn_momentum,
                    bn_epsilon=bn_epsilon,
                    bn_initialization=bn_initialization,
                    bn_fused=bn_fused,
                    bias_initialization=bias_initialization,
                    **hardware_settings,
                    dtype=dtype,
                    name=f"block{i + 1}",
                )
            )
            if size in self.attention_resolutions:
                self._add_attention(i, size)
        self._make_output_layers()

    def _make_output_layers(self):
        """The batch norm and the 3x3 convolution to `out_channels` after the blocks."""
        self.output_bn = keras.layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon, synchronized=True, dtype=self.dtype_policy,
            name="output_bn"
        )
        self.output_conv = maybe_spectral_norm(
            keras.layers.Conv2D(
                self.out_channels,
                3,
                padding="same",
                kernel_initializer=initializers.fresh(self.kernel_initializer),
                bias_initializer=initializers.bias(
                    self.bias_initialization, 3 * 3 * self.channel_multipliers[-1] * self.base_channels),
                dtype=self.dtype_policy,
                name="output_conv",
            ),
            self.use_spectral_norm,
            filter_gradient=self.filter_gradient,
        )

    def build(self, z_shape=None, labels_shape=None):
        if not self.built:
            batch = 1
            labels = ops.zeros((batch,), "int32") if self.num_classes else None
            self.call(ops.zeros((batch, self.dim_z)), labels, training=False)
        self.built = True

    def call(self, z, labels=None, training=None, return_attention=False):
        self._check_labels(labels, "generator")
        x = self.linear(z, training=training)
        x = ops.reshape(x, (-1, 4, 4, self._initial_channels))
        maps = {}
        x = self._run_blocks(x, (labels,), training, return_attention, maps)
        norm = self.output_bn
        if self.bn_fused and training and norm.trainable and normalization.fusable(x):
            x = normalization.fused_training_normalization(norm, x, norm.gamma, norm.beta)
        else:
            x = norm(x, training=training)
        x = relu(x)
        images = ops.cast(ops.tanh(self.output_conv(x, training=training)), "float32")
        return (images, maps) if return_attention else images

    def get_config(self):
        config = super().get_config()
        config.update(self._common_config())
        config.update(dim_z=self.dim_z, out_channels=self.out_channels, bn_momentum=self.bn_momentum,
                      bn_epsilon=self.bn_epsilon, bn_initialization=self.bn_initialization, bn_fused=self.bn_fused)
        return config
