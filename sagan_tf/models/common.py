"""Helpers shared by the generator and the discriminator."""

import math

import keras

from sagan_tf.layers import conv_grad, initializers
from sagan_tf.layers.attention import SelfAttention, attention_style_kwargs


def check_resolution(resolution, known):
    """Raises unless `resolution` is a power of two >= 16; returns log2(resolution / 4)."""
    if not isinstance(resolution, int) or resolution < 16 or resolution & (resolution - 1):
        raise ValueError(
            "`resolution` must be a power of two >= 16 (defaults exist for "
            f"{sorted(known)}). Received: `resolution={resolution}`"
        )
    return int(math.log2(resolution // 4))


def check_attention_resolutions(attention_resolutions, available, network):
    """Returns the requested attention resolutions as a sorted tuple, or raises naming the bad one."""
    requested = tuple(sorted({int(r) for r in (attention_resolutions or ())}))
    unknown = [r for r in requested if r not in available]
    if unknown:
        raise ValueError(
            f"The {network} has feature maps at {sorted(set(available))}; cannot place attention "
            f"at {unknown}. Received: `attention_resolutions={tuple(attention_resolutions)}`"
        )
    return requested


def make_attention(style, block_size, use_spectral_norm, kernel_initializer, dtype, name):
    return SelfAttention(
        query_block_size=block_size,
        use_spectral_norm=use_spectral_norm,
        kernel_initializer=kernel_initializer,
        dtype=dtype,
        name=name,
        **attention_style_kwargs(style),
    )


def count_parameters(weights):
    """The number of scalars in `weights` (e.g. a network's `trainable_weights`)."""
    return sum(math.prod(w.shape) for w in weights)


def parameter_summary(*models):
    """A table of trainable / non-trainable parameter counts of each model and its sub-layers.

    Returns the table as a string (print it); the last row of each model is its total.
    """
    lines = [f"{'layer':<42}{'trainable':>14}{'non-trainable':>16}"]
    for model in models:
        total_t = total_n = 0
        for layer in model.layers:
            t, n = count_parameters(layer.trainable_weights), count_parameters(layer.non_trainable_weights)
            total_t, total_n = total_t + t, total_n + n
            lines.append(f"  {model.name + '/' + layer.name:<40}{t:>14,}{n:>16,}")
        lines.append(f"{model.name + ' total':<42}{total_t:>14,}{total_n:>16,}")
    return "\n".join(lines)


def run_attention(layer, x, training, return_attention, maps):
    """Applies an attention layer; with `return_attention`, stores its map in `maps[layer.name]`."""
    if return_attention:
        x, maps[layer.name] = layer(x, training=training, return_attention=True)
        return x
    return layer(x, training=training)


class Network(keras.Model):
    """What the generator and the discriminator share: the checks of their common arguments, the
    placement of attention after blocks, the block loop and the common part of their configs."""

    def _set_common(self, network, resolution, num_classes, base_channels, multipliers, feature_sizes,
                    attention_resolutions, attention_style, attention_block_size, use_spectral_norm,
                    kernel_initializer, bias_initialization):
        """Checks and stores the shared arguments; `feature_sizes`: the blocks' output sizes."""
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"`num_classes` must be an int >= 0. Received: `num_classes={num_classes}`")
        self.attention_resolutions = check_attention_resolutions(attention_resolutions, feature_sizes, network)
        attention_style_kwargs(attention_style)  # validates the name
        self.resolution = resolution
        self.num_classes = num_classes
        self.base_channels = base_channels
        self.channel_multipliers = tuple(multipliers)
        self.attention_style = attention_style
        self.attention_block_size = attention_block_size
        self.use_spectral_norm = use_spectral_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initialization = initializers.check_bias_initialization(bias_initialization)
        self._attention_after = ()

    def _set_hardware_settings(self, fused_resampling, filter_gradient):
        """Checks and stores the blocks' `fused_resampling` and `filter_gradient` (the hardware policy's
        arguments, `sagan_tf.machine.network_settings`); returns them as the blocks' keyword arguments."""
        if not isinstance(fused_resampling, bool):
            raise ValueError(
                f"`fused_resampling` must be True or False. Received: `fused_resampling={fused_resampling!r}`")
        self.fused_resampling = fused_resampling
        self.filter_gradient = conv_grad.check_filter_gradient(filter_gradient)
        return dict(fused_resampling=fused_resampling, filter_gradient=self.filter_gradient)

    def _add_attention(self, after_block, size):
        """Places a self-attention layer after block `after_block` (0-based), on `size`x`size` features."""
        self.attention_layers.append(make_attention(
            self.attention_style, self.attention_block_size, self.use_spectral_norm, self.kernel_initializer,
            self.dtype_policy, name=f"attention{size}"))
        self._attention_after += (after_block,)

    def _run_blocks(self, x, block_args, training, return_attention, maps):
        """The blocks (called as `block(x, *block_args, training=...)`) with attention where placed."""
        attention = dict(zip(self._attention_after, self.attention_layers))
        for i, block in enumerate(self.blocks):
            x = block(x, *block_args, training=training)
            if i in attention:
                x = run_attention(attention[i], x, training, return_attention, maps)
        return x

    def _check_labels(self, labels, network):
        if self.num_classes and labels is None:
            raise ValueError(f"This {network} is class-conditional ({self.num_classes} classes): pass `labels`.")

    def _common_config(self):
        return {
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "base_channels": self.base_channels,
            "channel_multipliers": self.channel_multipliers,
            "attention_resolutions": self.attention_resolutions,
            "attention_style": self.attention_style,
            "attention_block_size": self.attention_block_size,
            "use_spectral_norm": self.use_spectral_norm,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initialization": self.bias_initialization,
            "fused_resampling": self.fused_resampling,
            "filter_gradient": conv_grad.serialize_filter_gradient(self.filter_gradient),
        }
