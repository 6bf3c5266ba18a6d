"""The resampling convolutions of the residual blocks, computed with fewer multiply-adds.

A generator block upsamples by nearest neighbour and then applies a 3x3 convolution; a discriminator block
applies a 3x3 convolution and then 2x2 average pooling. Both compositions are linear in the input, and each
equals a smaller convolution on the low-resolution side, with a kernel that is a fixed sum of the 3x3
kernel's taps:

- upsample then 3x3 "same" convolution: each of the 4 output phases (even/odd row, even/odd column) reads
  only 2x2 input pixels, with taps summed from the 3x3 kernel (rows of phase 0: w0 and w1 + w2; of phase
  1: w0 + w1 and w2; the same for columns). Together that is a transposed convolution with stride 2 and a
  4x4 kernel: 4 x 4 = 16 products per input pixel instead of 4 x 9 = 36.
- 3x3 "same" convolution then average pooling: a 4x4 convolution with stride 2 of the input padded by 1,
  whose kernel is the 3x3 kernel summed over the 4 pooling offsets, divided by 4. 16 products per output
  pixel instead of 4 x 9.
- with a 1x1 kernel, upsampling and pooling commute with the convolution: it runs on the low-resolution
  side (4x fewer products).

Each 3x3 form is one op on the input itself (for even sizes; odd ones pad a copy before pooling), so the
training step holds no upsampled, padded or per-phase copies for the backward pass. The upsampling form
is used where its summed kernel does not outweigh the input (`fuses_upsampling`).

The results equal the plain compositions up to float rounding, with the same weights, so checkpoints and
spectral norm are unchanged, and gradients reach the 3x3 kernel through the tap sums. The functions take
the kernel in float32 and compute in the inputs' dtype (under mixed precision the taps are summed before
the cast to bfloat16 or float16). With `fused=False` they compute the plain compositions instead (the blocks'
`fused_resampling=False`: tests, and the benchmark's count of the model's nominal FLOPs). `filter_gradient`
is passed to every convolution but the one that pools an odd size (`sagan_tf.layers.conv_grad`: how each takes
its filter gradient).
"""

import tensorflow as tf

from sagan_tf.layers import conv_grad


def upsample_nearest(x):
    """[B, H, W, C] -> [B, 2H, 2W, C], nearest neighbour: one broadcast of each pixel to its 2x2 block, whose
    gradient (the block's sum) is a 2x2 average pooling times 4 (in float32 for float16, whose subnormals the
    average would lose). Two `tf.repeat`s copy the tensor twice and sum the gradient back in two passes; the
    gradient TensorFlow derives for the broadcast is a general 6-D reduction; and the gradient of TensorFlow's
    nearest-neighbour resize has no deterministic GPU kernel (op determinism rejects it)."""
    with tf.name_scope("upsample_nearest"):
        return _upsample_nearest(x)


@tf.custom_gradient
def _upsample_nearest(x):
    dynamic = tf.shape(x)
    batch, height, width, channels = (dim if dim is not None else dynamic[i] for i, dim in enumerate(x.shape))
    blocks = tf.broadcast_to(x[:, :, None, :, None, :], [batch, height, 2, width, 2, channels])

    def gradient(upstream):
        if upstream.dtype == tf.float16:
            return tf.cast(gradient(tf.cast(upstream, tf.float32)), tf.float16)
        return tf.nn.avg_pool2d(upstream, 2, 2, "VALID") * tf.constant(4, upstream.dtype)

    return tf.reshape(blocks, [batch, 2 * height, 2 * width, channels]), gradient


def downsample_average(x):
    """[B, H, W, C] -> [B, H/2, W/2, C], 2x2 average pooling (an odd last row or column is dropped)."""
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


def _kernel_size(kernel):
    size = kernel.shape[0]
    return size if size in (1, 3) and kernel.shape[1] == size else None


# Which 3x3 taps each 4x4 tap sums, along one axis (row t of the matrix: the 3x3 taps d it adds up).
# Upsampling: output pixel 2i + a reads input pixels i - 1 and i (a = 0) or i and i + 1 (a = 1), so the
# transposed convolution's 4 taps, by offset from 2i - 1, are [w2, w1 + w2, w0 + w1, w0].
UPSAMPLING_TAPS = ((0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0))
# Downsampling: output pixel i reads padded rows 2i .. 2i + 3; tap t adds the 3x3 taps d with d + offset = t
# (offset 0 or 1: the two rows a 2x2 pool averages), and the pool's 1/4 is shared out as 1/2 per axis.
DOWNSAMPLING_TAPS = ((0.5, 0, 0), (0.5, 0.5, 0), (0, 0.5, 0.5), (0, 0, 0.5))


def _summed_taps(matrix, kernel):
    """The [4, 4, A, B] kernel whose tap (s, t) is sum_ij matrix[s][i] matrix[t][j] kernel[i, j] for a
    [3, 3, A, B] kernel: two matrix products on the kernel's own layout, so neither they nor their gradient
    hold more than one [4, 3, A, B] intermediate (sums of zero-padded shifted copies would hold several)."""
    a, b = kernel.shape[2], kernel.shape[3]
    m = tf.constant(matrix, kernel.dtype)  # [4, 3]
    rows = tf.reshape(tf.matmul(m, tf.reshape(kernel, [3, 3 * a * b])), [4, 3, a * b])  # rows summed
    taps = tf.matmul(tf.broadcast_to(m, [4, 4, 3]), rows)  # [4, 4, A * B]: columns summed, row by row
    return tf.reshape(taps, [4, 4, a, b])


def _as(dtype, kernel):
    """The kernel in the inputs' dtype (under mixed precision the taps are summed in float32 first)."""
    return tf.cast(kernel, dtype)


# The fused upsampling form reads a 4x4 kernel summed from the 3x3 one, and its gradient sums back. Where the
# kernel outweighs the input (few positions, many channels: the first blocks of the ImageNet generators),
# that costs more than the products it saves: at batch 8, 4x4 -> 8x8 with 1,024 -> 1,024 channels, a
# training call of the plain composition took 0.21-0.26 s against 0.58-0.62 s (2-core AMD EPYC, Zen 4),
# and peaked about 0.35 GiB lower. The fused form is used where 9 C_out <= FUSE_UP_RATIO x batch x H x W (the
# low-resolution positions); the measured crossover lay between 2.25 (fused 30% faster) and 9 (plain 30%
# faster). A batch that is unknown when traced counts as 1.
FUSE_UP_RATIO = 4


def fuses_upsampling(input_shape, out_channels):
    """Whether `upsample_conv2d(fused=True)` computes a 3x3 kernel's upsampling convolution in fused form for
    inputs of `input_shape` [B, H, W, C_in] (B may be None; H and W must be known)."""
    batch, height, width = input_shape[0] or 1, input_shape[1], input_shape[2]
    return 9 * out_channels <= FUSE_UP_RATIO * batch * height * width


def upsample_conv2d(inputs, kernel, fused=True, filter_gradient="onednn"):
    """conv2d(upsample_nearest(inputs), kernel, stride 1, "SAME") for a [k, k, C_in, C_out] kernel; with
    `fused`, in fused form where `fuses_upsampling` says it pays (1x1 kernels: always)."""
    size = _kernel_size(kernel)
    if (not fused or size is None or None in inputs.shape[1:3]
            or (size == 3 and not fuses_upsampling(inputs.shape, kernel.shape[-1]))):
        return conv_grad.conv2d(upsample_nearest(inputs), _as(inputs.dtype, kernel), filter_gradient)
    if size == 1:
        return upsample_nearest(conv_grad.conv2d(inputs, _as(inputs.dtype, kernel), filter_gradient))
    # As a transposed convolution with stride 2 (its "same" padding puts 1 before and 1 after).
    flipped = tf.transpose(kernel, [0, 1, 3, 2])  # conv2d_transpose's kernel is [k, k, C_out, C_in]
    taps = _summed_taps(UPSAMPLING_TAPS, flipped)
    return conv_grad.conv2d_transpose_stride2(inputs, _as(inputs.dtype, taps), filter_gradient)


def conv2d_downsample(inputs, kernel, fused=True, filter_gradient="onednn"):
    """downsample_average(conv2d(inputs, kernel, stride 1, "SAME")) for a [k, k, C_in, C_out] kernel."""
    size = _kernel_size(kernel)
    if not fused or size is None:
        return downsample_average(conv_grad.conv2d(inputs, _as(inputs.dtype, kernel), filter_gradient))
    if size == 1:
        return conv_grad.conv2d(downsample_average(inputs), _as(inputs.dtype, kernel), filter_gradient)
    taps = _as(inputs.dtype, _summed_taps(DOWNSAMPLING_TAPS, kernel))
    height, width = inputs.shape[1], inputs.shape[2]
    if height is not None and width is not None and height % 2 == width % 2 == 0:
        # For an even size, "same" padding of a 4x4 kernel with stride 2 is 1 before and 1 after: no padded copy.
        return conv_grad.conv2d_stride2(inputs, taps, filter_gradient)
    return tf.nn.conv2d(tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]]), taps, 2, "VALID")
