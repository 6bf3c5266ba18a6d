"""SAGAN's projection discriminator with self-attention (Miyato & Koyama, 2018)."""

import keras
from keras import ops

from sagan_tf import configurables
from sagan_tf.layers.activations import relu
from sagan_tf.layers.blocks import DiscriminatorBlock
from sagan_tf.layers import initializers
from sagan_tf.layers.spectral_norm import maybe_spectral_norm
from sagan_tf.models import common

# (channel multipliers of the blocks, the feature-map size the downsampling stops at), per image
# resolution. 128 is SAGAN's ImageNet discriminator: 1, 2, 4, 8, 16, 16 x 64 down to 4x4.
DISCRIMINATOR_CHANNELS = {
    32: ((4, 4, 4, 4), 8),
    64: ((1, 2, 4, 8, 16), 4),
    128: ((1, 2, 4, 8, 16, 16), 4),
    256: ((1, 2, 4, 8, 8, 16, 16), 4),
}


@configurables.configurable
@keras.saving.register_keras_serializable(package="sagan_tf")
class Discriminator(common.Network):
    """(image, class label) -> real/fake logit, with a projection term for the label.

    An optimised first residual down-block on the image, then residual down-blocks until the
    feature map reaches `final_resolution` and blocks without downsampling for the remaining
    multipliers; self-attention after the first block whose output has a size in
    `attention_resolutions`; ReLU; global SUM pooling to h [B, C]; output
    `linear(h) + <embed(label), h>` (the projection of Miyato & Koyama, 2018).

    The defaults are the paper's ImageNet 128x128 discriminator: base_channels 64, multipliers
    1, 2, 4, 8, 16, 16, attention at the 32x32 feature map (after the second block), spectral norm
    on every weight including the class embedding.

    Args:
        resolution: input size, a power of two >= 16 (defaults for 32, 64, 128, 256).
        num_classes: number of classes; 0 for an unconditional discriminator (no projection).
        base_channels: channel width "ch".
        channel_multipliers: None for the resolution's default, else one int per block.
        final_resolution: the feature-map size at which downsampling stops (default per resolution).
        attention_resolutions: feature-map sizes after which to place self-attention.
        attention_style, attention_block_size: as for the generator.
        use_spectral_norm: spectral norm on every weight.
        kernel_initializer: weight initializer.
        fused_resampling, filter_gradient: as for the generator (fused: convolve and pool in one).
        bias_initialization: as for the generator.

    Call arguments: `images` float [B, resolution, resolution, C]; `labels` int [B] (required if
    conditional); `return_attention` as for the generator.
    Output: float32 logits [B].
    """

    def __init__(
        self,
        resolution=128,
        num_classes=1000,
        base_channels=64,
        channel_multipliers=None,
        final_resolution=None,
        attention_resolutions=(32,),
        attention_style="official",
        attention_block_size=None,
        use_spectral_norm=True,
        kernel_initializer="glorot_uniform",
        fused_resampling=True,
        filter_gradient="onednn",
        bias_initialization="zeros",
        **kwargs,
    ):
        kwargs.setdefault("name", "discriminator")
        super().__init__(**kwargs)
        hardware_settings = self._set_hardware_settings(fused_resampling, filter_gradient)
        common.check_resolution(resolution, DISCRIMINATOR_CHANNELS)
        default_multipliers, default_final = DISCRIMINATOR_CHANNELS.get(resolution, ((), 4))
        multipliers = tuple(channel_multipliers or default_multipliers)
        final_resolution = final_resolution or default_final
        sizes, size = [], resolution
        for _ in multipliers:
            size = size // 2 if size > final_resolution else size
            sizes.append(size)
        if not multipliers or sizes[-1] != final_resolution or final_resolution < 1:
            raise ValueError(
                f"A {resolution}x{resolution} discriminator with `final_resolution="
                f"{final_resolution}` needs at least one channel multiplier per halving. "
                f"Received: `channel_multipliers={channel_multipliers}`"
            )
        self._set_common("discriminator", resolution, num_classes, base_channels, multipliers, sizes,
                         attention_resolutions, attention_style, attention_block_size, use_spectral_norm,
                         kernel_initializer, bias_initialization)
        self.final_resolution = final_resolution

        dtype = self.dtype_policy
        self.blocks, self.attention_layers = [], []
        previous = resolution
        for i, (multiplier, size) in enumerate(zip(multipliers, sizes)):
            self.blocks.append(
                DiscriminatorBlock(
                    multiplier * base_channels,
                    downsample=size < previous,
                    optimized=i == 0,
                    use_spectral_norm=use_spectral_norm,
                    kernel_initializer=self.kernel_initializer,
                    bias_initialization=bias_initialization,
                    **hardware_settings,
                    dtype=dtype,
                    name=f"block{i + 1}",
                )
            )
            if size in self.attention_resolutions and size not in sizes[:i]:
                self._add_attention(i, size)
            previous = size
        self._feature_channels = multipliers[-1] * base_channels
        self.linear = maybe_spectral_norm(
            keras.layers.Dense(1, kernel_initializer=initializers.fresh(self.kernel_initializer),
                               bias_initializer=initializers.bias(bias_initialization, self._feature_channels),
                               dtype=dtype, name="linear"),
            use_spectral_norm,
        )
        self.embedding = None
        if num_classes:
            self.embedding = maybe_spectral_norm(
                keras.layers.Embedding(
                    num_classes,
                    self._feature_channels,
                    embeddings_initializer=initializers.fresh(self.kernel_initializer),
                    dtype=dtype,
                    name="embedding",
                ),
                use_spectral_norm,
            )

    def build(self, images_shape=None, labels_shape=None):
        if not self.built:
            channels = 3 if images_shape is None else int(images_shape[-1])
            images = ops.zeros((1, self.resolution, self.resolution, channels))
            labels = ops.zeros((1,), "int32") if self.num_classes else None
            self.call(images, labels, training=False)
        self.built = True

    def call(self, images, labels=None, training=None, return_attention=False):
        self._check_labels(labels, "discriminator")
        x = ops.cast(images, self.compute_dtype)
        maps = {}
        x = self._run_blocks(x, (), training, return_attention, maps)
        features = ops.sum(relu(x), axis=(1, 2))
        logits = self.linear(features, training=training)[:, 0]
        if self.embedding is not None:
            labels = ops.reshape(labels, (-1,))
            projection = ops.sum(self.embedding(labels, training=training) * features, axis=1)
            logits = logits + projection
        logits = ops.cast(logits, "float32")
        return (logits, maps) if return_attention else logits

    def get_config(self):
        config = super().get_config()
        config.update(self._common_config())
        config.update(final_resolution=self.final_resolution)
        return config
