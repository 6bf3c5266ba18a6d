"""A 2D convolution whose filter gradient is taken with matrix products where that is faster on the CPU.

On CPUs whose oneDNN kernels stop at AVX2 (no AVX-512, or `ONEDNN_MAX_CPU_ISA=AVX2`), oneDNN computes a
convolution's filter gradient with its direct kernel (`jit:avx2 backward_weights`), while the forward pass
and the input gradient use its brgemm kernels: on a 2-core AMD EPYC the filter gradient of SAGAN's 3x3
convolutions ran at 0.4-0.8 of the forward pass's FLOP rate (`tools/bench_conv_grad.py`). For a stride-1
"same" k x k convolution the filter gradient is a sum of k^2 matrix products,

    dW[i, j] = X_ij^T dY,    X_ij = the input shifted by (i, j), as an [N * H * W, C_in] matrix,

which run at the matmul rate. The shifted inputs are row ranges of one padded [H, N, W, C] transpose
(TensorFlow slices the outermost axis without a copy), with zero columns in the output gradient so that
column shifts need no copy either (`FLAT_MIN_WIDTH`). `conv2d` uses it for the shapes where it measured
faster (`use_matmul_filter_gradient`) and leaves the rest, the forward pass and the input gradient to
TensorFlow. The result equals TensorFlow's gradient up to float rounding.

`set_filter_gradient("auto" | "onednn" | "matmul")` chooses for the whole process (the train command's
`--filter_gradient`); "auto" applies the measured rules for the kernels oneDNN runs on this machine.
"""

import functools

import tensorflow as tf

from sagan_tf import machine

_mode = "auto"


def set_filter_gradient(mode):
    """Chooses how convolution filter gradients are computed from now on (traced functions keep theirs)."""
    global _mode
    if mode not in machine.FILTER_GRADIENT_MODES:
        raise ValueError(f"filter gradient must be one of {machine.FILTER_GRADIENT_MODES}. Received: {mode!r}")
    _mode = mode


@functools.lru_cache(maxsize=None)
def _accelerators():
    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))


@functools.lru_cache(maxsize=None)
def onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels (the rules were measured against them, not Eigen's)."""
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415  (no public API for it)

    return bool(_pywrap_util_port.IsMklEnabled())


def on_accelerator():
    """Whether the convolutions run on a GPU or TPU (a visible GPU, or a TPU strategy): "auto" then leaves
    the filter gradient to their own kernels, which the CPU measurements say nothing about."""
    return _accelerators() or isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy)


def describe():
    """The mode in words, for the train command's start-up line."""
    if _mode != "auto":
        return {"matmul": "matrix products (forced)", "onednn": "TensorFlow's kernels (forced)"}[_mode]
    if on_accelerator():
        return "TensorFlow's kernels (auto: GPU/TPU)"
    if not onednn_enabled():
        return "TensorFlow's kernels (auto: oneDNN off)"
    level = "AVX-512" if machine.avx512_kernels() else "AVX2"
    return f"auto: matrix products for the shapes where they beat oneDNN's {level} kernel, else TensorFlow's"


def use_matmul_filter_gradient(height, width, in_channels, out_channels, kernel_size, avx2=None):
    """The rule of "auto", from `tools/bench_conv_grad.py` on a 2-core AMD EPYC (both kernel levels): where
    the matrix products beat oneDNN's filter gradient. With AVX2 kernels: 1x1 convolutions at 64x64 and
    more; k x k ones at 64x64 and more with 64+ channels, at 32x32 with 128+, and at 8x8 and less with
    512+ channels. With AVX-512 kernels: 1x1 convolutions at 32x32 and more; k x k ones at 8x8 and less
    with 512+ channels. Never on a GPU or TPU (`on_accelerator`), nor with oneDNN off (TensorFlow's default
    on CPUs without AVX-512 when not started by the train command, which turns it on: Eigen's kernels were
    not measured). `avx2` overrides the detected kernel level (for tests)."""
    if _mode != "auto":
        return _mode == "matmul"
    if avx2 is None:
        if on_accelerator() or not onednn_enabled():
            return False
        avx2 = not machine.avx512_kernels()
    positions, channels = height * width, min(in_channels, out_channels)
    if kernel_size == 1:
        return positions >= (64 * 64 if avx2 else 32 * 32)
    small_and_wide = positions <= 8 * 8 and channels >= 512
    large = positions >= 64 * 64 and channels >= 64 or positions >= 32 * 32 and channels >= 128
    return small_and_wide or (avx2 and large)


# From this width on, matmul_filter_gradient reads its shifted inputs as row ranges of one padded copy (at
# most (W + 2p) / W more products, 6% at 32x32 with 3x3); below it, as exact copies per column shift.
FLAT_MIN_WIDTH = 16


def matmul_filter_gradient(inputs, output_gradient, kernel_size):
    """dL/dW [k, k, C_in, C_out] of a stride-1 "same" convolution, as k^2 matrix products."""
    in_channels, out_channels = inputs.shape[-1], output_gradient.shape[-1]
    if kernel_size == 1:
        product = tf.matmul(tf.reshape(inputs, [-1, in_channels]),
                            tf.reshape(output_gradient, [-1, out_channels]), transpose_a=True)
        return product[tf.newaxis, tf.newaxis]
    pad = (kernel_size - 1) // 2
    height, width = inputs.shape[1], inputs.shape[2]
    padded = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows_first = tf.transpose(padded, [1, 0, 2, 3])  # [H + 2p, N, W + 2p, C_in]: row shifts are outer slices
    taps = [[None] * kernel_size for _ in range(kernel_size)]
    if width >= FLAT_MIN_WIDTH:
        # Both operands as matrices with a row per position of [rows, N, W + 2p]: the output gradient gets
        # zero columns too, so a shift by (i, j) is the row range offset by i * N * (W + 2p) + j, a view (no
        # copy), and the zero columns cancel the products that wrap from one image row into the next.
        gradient = tf.transpose(tf.pad(output_gradient, [[0, 0], [0, 0], [pad, pad], [0, 0]]), [1, 0, 2, 3])
        gradient = tf.reshape(gradient, [-1, out_channels])
        inputs_matrix = tf.reshape(rows_first, [-1, in_channels])
        image_row = tf.shape(inputs)[0] * (width + 2 * pad)
        length = height * image_row - 2 * pad  # the first and last p rows are zero columns: left out
        gradient = gradient[pad:pad + length]
        for i in range(kernel_size):
            for j in range(kernel_size):
                start = i * image_row + j
                taps[i][j] = tf.matmul(inputs_matrix[start:start + length], gradient, transpose_a=True)
    else:
        gradient = tf.reshape(tf.transpose(output_gradient, [1, 0, 2, 3]), [-1, out_channels])
        for j in range(kernel_size):
            columns = rows_first[:, :, j:j + width, :]  # a copy per column shift: exact products, k copies
            for i in range(kernel_size):
                shifted = tf.reshape(columns[i:i + height], [-1, in_channels])
                taps[i][j] = tf.matmul(shifted, gradient, transpose_a=True)
    return tf.stack([tf.stack(row) for row in taps])


def conv2d(inputs, kernel):
    """tf.nn.conv2d(inputs, kernel, 1, "SAME") for NHWC inputs and a square odd kernel, with the filter
    gradient of `matmul_filter_gradient` where `use_matmul_filter_gradient` says so."""
    kernel_size, _, in_channels, out_channels = kernel.shape
    height, width = inputs.shape[1], inputs.shape[2]
    if height is None or width is None or kernel_size % 2 == 0 or kernel.shape[1] != kernel_size or not (
            use_matmul_filter_gradient(height, width, in_channels, out_channels, kernel_size)):
        return tf.nn.conv2d(inputs, kernel, 1, "SAME")

    @tf.custom_gradient
    def convolution(x, w):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=w, out_backprop=dy,
                                                strides=[1, 1, 1, 1], padding="SAME")
            return dx, matmul_filter_gradient(x, dy, kernel_size)

        return tf.nn.conv2d(x, w, 1, "SAME"), gradient

    return convolution(inputs, kernel)
