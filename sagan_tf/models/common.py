"""Helpers shared by the generator and the discriminator."""

import math

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


def parameter_summary(*models):
    """A table of trainable / non-trainable parameter counts of each model and its sub-layers.

    Returns the table as a string (print it); the last row of each model is its total.
    """
    lines = [f"{'layer':<42}{'trainable':>14}{'non-trainable':>16}"]
    for model in models:
        total_t = total_n = 0
        for layer in model.layers:
            t = sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
            n = sum(int(math.prod(w.shape)) for w in layer.non_trainable_weights)
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
