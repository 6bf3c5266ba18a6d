"""The self-attention block of SAGAN (Zhang et al., 2019, section 3, equations 1-3)."""

import keras
import tensorflow as tf
from keras import ops

from sagan_tf.layers import initializers
from sagan_tf.layers.spectral_norm import maybe_spectral_norm

# Named presets for the networks' `attention_style` argument.
ATTENTION_STYLES = {
    # Equations (1)-(3) as printed: h keeps C channels, no pooling, no output convolution.
    "paper": {"value_ratio": 1, "pool_size": 1, "output_projection": False},
    # The authors' released code (and the ports that reproduce it): h to C/2, keys and values
    # max-pooled 2x2, a final 1x1 convolution back to C channels.
    "official": {"value_ratio": 2, "pool_size": 2, "output_projection": True},
}


def attention_style_kwargs(style):
    """Returns the SelfAttention constructor arguments of a named style ("paper"/"official")."""
    if style not in ATTENTION_STYLES:
        raise ValueError(
            f"Unknown attention style; expected one of {sorted(ATTENTION_STYLES)}. "
            f"Received: `attention_style={style!r}`"
        )
    return dict(ATTENTION_STYLES[style])


def _split_blocks(x, block_size, num_blocks):
    """[B, N, C] -> [num_blocks, B, block_size, C], zero-padding N up to num_blocks * block_size."""
    n = x.shape[1]
    x = tf.pad(x, [[0, 0], [0, num_blocks * block_size - n], [0, 0]])
    x = tf.reshape(x, tf.stack([tf.shape(x)[0], num_blocks, block_size, x.shape[-1]]))
    return tf.transpose(x, [1, 0, 2, 3])


def _merge_blocks(x, n):
    """[num_blocks, B, block_size, C] -> [B, n, C] (padding dropped)."""
    x = tf.transpose(x, [1, 0, 2, 3])
    x = tf.reshape(x, tf.stack([tf.shape(x)[0], -1, x.shape[-1]]))
    return x[:, :n]


def blocked_attention(queries, keys, values, block_size):
    """softmax(queries keys^T) values, `block_size` query rows at a time, with a matching backward.

    queries [B, N, Ck], keys [B, Nk, Ck], values [B, Nk, Cv] -> [B, N, Cv]; N must be static.

    The forward pass keeps only the output; the backward pass recomputes each block's scores and
    softmax and accumulates the key and value gradients. Both passes run the
    blocks sequentially (`tf.while_loop`, one iteration at a time), so the attention arrays held at
    once are a few [B, block_size, Nk] ones, never [B, N, Nk]. The matrix products run in the inputs'
    dtype (so float16 scores can overflow before their cast); the softmax, its gradient and the
    accumulated key and value gradients are float32.
    """
    n = queries.shape[1]
    num_blocks = -(-n // block_size)
    dtype = values.dtype

    def scores(q, k):  # [B, b, Ck] x [B, Nk, Ck] -> float32 [B, b, Nk]
        return tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32)

    @tf.custom_gradient
    def attend(q, k, v):
        q_blocks = _split_blocks(q, block_size, num_blocks)

        def forward(i, out):
            # TensorFlow's fused softmax (one kernel: row maximum, exponentials, normalisation), in float32,
            # so that a float16 product stays within the values' range
            p = tf.nn.softmax(scores(q_blocks[i], k))
            return i + 1, out.write(i, tf.matmul(tf.cast(p, dtype), v))

        _, out = tf.while_loop(
            lambda i, *_: i < num_blocks, forward, (0, tf.TensorArray(dtype, num_blocks)), parallel_iterations=1)
        out_blocks = out.stack()  # [nb, B, b, Cv]

        def grad(d_out):
            d_blocks = _split_blocks(d_out, block_size, num_blocks)
            # sum_j P_ij dP_ij = dO_i . O_i: the softmax gradient's correction per row.
            delta = tf.reduce_sum(tf.cast(d_blocks, tf.float32) * tf.cast(out_blocks, tf.float32), -1, keepdims=True)

            def backward(i, dq, dk, dv):
                p = tf.nn.softmax(scores(q_blocks[i], k))  # [B, b, Nk], recomputed
                d_o = d_blocks[i]
                dv += tf.cast(tf.matmul(tf.cast(p, dtype), d_o, transpose_a=True), tf.float32)
                dp = tf.cast(tf.matmul(d_o, v, transpose_b=True), tf.float32)
                ds = tf.cast(p * (dp - delta[i]), q.dtype)
                dk += tf.cast(tf.matmul(ds, q_blocks[i], transpose_a=True), tf.float32)
                return i + 1, dq.write(i, tf.matmul(ds, k)), dk, dv

            _, dq, dk, dv = tf.while_loop(
                lambda i, *_: i < num_blocks, backward,
                (0, tf.TensorArray(q.dtype, num_blocks), tf.zeros(tf.shape(k), tf.float32),
                 tf.zeros(tf.shape(v), tf.float32)),
                parallel_iterations=1)
            return _merge_blocks(dq.stack(), n), tf.cast(dk, k.dtype), tf.cast(dv, v.dtype)

        return _merge_blocks(out_blocks, n), grad

    return attend(queries, keys, values)


@keras.saving.register_keras_serializable(package="sagan_tf")
class SelfAttention(keras.layers.Layer):
    """Self-attention over the positions of a feature map, with a residual gate gamma.

    With x the [N, C] features of one image (N = H * W positions) and 1x1 convolutions
    f (keys, C/8 channels), g (queries, C/8) and h (values):

        s_ij = f(x_i)^T g(x_j)                  (scores)
        beta_ji = softmax over i of s_ij        (how much output j attends to input i)
        o_j = sum_i beta_ji h(x_i)
        y_j = gamma * o_j + x_j,                gamma a scalar initialised to 0.

    With `pool_size` > 1 the keys and values are max-pooled, so there are N / pool_size**2 of
    them, and `output_projection` adds a 1x1 convolution v from the value channels back to C, as in
    the released code. The returned attention map has shape [B, N, N_key]; its rows sum to 1.

    `query_block_size` selects the memory-bounded path (`blocked_attention`): queries are processed
    in blocks of that many positions, one block after the other in the forward and the backward
    pass, so at most a few [B, block, N_key] arrays exist at once instead of [B, N, N_key]; the
    result and its gradients equal the full path's. The softmax runs in float32 under mixed precision.

    Args:
        key_channels: channels of f and g; default C // 8 (at least 1).
        value_ratio: h maps C to C // value_ratio channels; must be 1 without output_projection.
        pool_size: int >= 1, max-pool window and stride for keys and values.
        output_projection: add the 1x1 convolution v (value channels -> C).
        use_spectral_norm: wrap the 1x1 convolutions in `SpectralNormalization`.
        query_block_size: None for the full path, else a positive int.
        kernel_initializer: initializer of the 1x1 convolutions.

    Input shape: [B, H, W, C]. Output shape: [B, H, W, C], and with `return_attention=True` also
    the attention map [B, H * W, (H / pool_size) * (W / pool_size)].
    """

    def __init__(
        self,
        key_channels=None,
        value_ratio=1,
        pool_size=1,
        output_projection=False,
        use_spectral_norm=True,
        query_block_size=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if key_channels is not None and (not isinstance(key_channels, int) or key_channels < 1):
            raise ValueError(
                f"`key_channels` must be None or a positive int. Received: `key_channels={key_channels}`"
            )
        if not isinstance(value_ratio, int) or value_ratio < 1:
            raise ValueError(
                f"`value_ratio` must be a positive int. Received: `value_ratio={value_ratio}`"
            )
        if value_ratio != 1 and not output_projection:
            raise ValueError(
                "Without an output projection the values must keep all C channels (the residual "
                f"y = gamma * o + x adds them to x). Received: `value_ratio={value_ratio}`, "
                f"`output_projection={output_projection}`"
            )
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"`pool_size` must be a positive int. Received: `pool_size={pool_size}`")
        if query_block_size is not None and (
            not isinstance(query_block_size, int) or query_block_size < 1
        ):
            raise ValueError(
                "`query_block_size` must be None or a positive int. "
                f"Received: `query_block_size={query_block_size}`"
            )
        self.key_channels = key_channels
        self.value_ratio = value_ratio
        self.pool_size = pool_size
        self.output_projection = output_projection
        self.use_spectral_norm = use_spectral_norm
        self.query_block_size = query_block_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _conv1x1(self, channels, name):
        conv = keras.layers.Conv2D(
            channels,
            1,
            use_bias=False,
            kernel_initializer=initializers.fresh(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )
        return maybe_spectral_norm(conv, self.use_spectral_norm)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "SelfAttention expects [batch, height, width, channels] inputs with known "
                f"channels. Received: `input_shape={input_shape}`"
            )
        height, width, channels = input_shape[1], input_shape[2], int(input_shape[-1])
        if self.pool_size > 1 and height is not None and (
            height % self.pool_size or width % self.pool_size
        ):
            raise ValueError(
                f"The feature map {height}x{width} is not divisible by "
                f"`pool_size={self.pool_size}`."
            )
        self._channels = channels
        self._key_channels = self.key_channels or max(channels // 8, 1)
        self._value_channels = max(channels // self.value_ratio, 1)
        self.query_conv = self._conv1x1(self._key_channels, "query")  # g in the paper
        self.key_conv = self._conv1x1(self._key_channels, "key")  # f in the paper
        self.value_conv = self._conv1x1(self._value_channels, "value")  # h in the paper
        for conv in (self.query_conv, self.key_conv, self.value_conv):
            conv.build(input_shape)
        self.output_conv = None
        if self.output_projection:
            self.output_conv = self._conv1x1(channels, "output")  # v in the released code
            self.output_conv.build((*input_shape[:3], self._value_channels))
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")
        self.built = True

    def _pool(self, x):
        if self.pool_size == 1:
            return x
        return ops.max_pool(x, self.pool_size, strides=self.pool_size, padding="valid")

    @staticmethod
    def _attend(queries, keys, values):
        """queries [B, n, Ck], keys [B, Nk, Ck], values [B, Nk, Cv] -> ([B, n, Cv], [B, n, Nk])."""
        scores = ops.matmul(queries, ops.transpose(keys, (0, 2, 1)))
        attention = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        outputs = ops.matmul(ops.cast(attention, values.dtype), values)
        return outputs, attention

    def _attend_blocked(self, queries, keys, values, training, return_attention):
        if queries.shape[1] is None:
            raise ValueError("The blocked attention path needs a static feature-map size.")
        if not return_attention:
            return blocked_attention(queries, keys, values, self.query_block_size), None
        outputs, maps = [], []  # the maps are wanted whole: plain blocks, no memory bound
        for start in range(0, queries.shape[1], self.query_block_size):
            out, attention = self._attend(queries[:, start : start + self.query_block_size], keys, values)
            outputs.append(out)
            maps.append(attention)
        return ops.concatenate(outputs, axis=1), ops.concatenate(maps, axis=1)

    def call(self, inputs, training=None, return_attention=False):
        shape = ops.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        queries = self.query_conv(inputs, training=training)
        keys = self._pool(self.key_conv(inputs, training=training))
        values = self._pool(self.value_conv(inputs, training=training))
        # The query count stays static where the feature map's size is (the blocked path needs it), also
        # when the batch size is not (an exported signature's).
        static = inputs.shape[1] * inputs.shape[2] if None not in (inputs.shape[1], inputs.shape[2]) else -1
        queries = ops.reshape(queries, (batch, static, self._key_channels))
        keys = ops.reshape(keys, (batch, -1, self._key_channels))
        values = ops.reshape(values, (batch, -1, self._value_channels))
        if self.query_block_size is None:
            outputs, attention = self._attend(queries, keys, values)
        else:
            outputs, attention = self._attend_blocked(
                queries, keys, values, bool(training), return_attention
            )
        outputs = ops.reshape(outputs, (batch, height, width, self._value_channels))
        if self.output_conv is not None:
            outputs = self.output_conv(outputs, training=training)
        outputs = inputs + ops.cast(self.gamma, outputs.dtype) * outputs
        if return_attention:
            return outputs, attention
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "key_channels": self.key_channels,
                "value_ratio": self.value_ratio,
                "pool_size": self.pool_size,
                "output_projection": self.output_projection,
                "use_spectral_norm": self.use_spectral_norm,
                "query_block_size": self.query_block_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
