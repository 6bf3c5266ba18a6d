"""A 2D convolution whose filter gradient is taken with matrix products where that is faster on the CPU.

On CPUs whose oneDNN kernels stop at AVX2 (no AVX-512, or `ONEDNN_MAX_CPU_ISA=AVX2`), oneDNN computes a
convolution's filter gradient with its direct kernel (`jit:avx2 backward_weights`), while the forward pass
and the input gradient use its brgemm kernels: on a 2-core AMD EPYC the filter gradient of SAGAN's 3x3
convolutions ran at 0.4-0.8 of the forward pass's FLOP rate (`tools/bench_conv_grad.py`). For a stride-1
"same" k x k convolution the filter gradient is a sum of k^2 matrix products,

    dW[i, j] = X_ij^T dY,    X_ij = the input shifted by (i, j), as an [N * H * W, C_in] matrix,

which run at the matmul rate. The shifted inputs are row ranges of one padded [H, N, W, C] transpose
(TensorFlow slices the outermost axis without a copy), with zero columns in the output gradient so that
column shifts need no copy either (`FLAT_MIN_WIDTH`). `conv2d` uses it for the shapes its `filter_gradient`
argument names and leaves the rest, the forward pass and the input gradient to TensorFlow. The result equals
TensorFlow's gradient up to float rounding.

Which convolutions take it is the `filter_gradient` argument of the layers that convolve (`conv2d`,
`SpectralNormalization`, the residual blocks, Generator and Discriminator), fixed when they are built:
"onednn" (TensorFlow's kernel for all), "matmul" (matrix products for all), or a rule list, matrix products
for the shapes that match one of its rules (`use_matmul_filter_gradient`). Which rule list fits a machine is
the hardware policy's choice (`sagan_tf.machine.network_settings`), made once by the train command.
"""


import tensorflow as tf

FILTER_GRADIENTS = ("onednn", "matmul")  # besides a rule list
RULE_KEYS = ("kernel", "min_positions", "max_positions", "min_channels")


def _check_rule(rule, filter_gradient):
    if not isinstance(rule, dict) or set(rule) - set(RULE_KEYS) or rule.get("kernel") not in ("1x1", "kxk"):
        raise ValueError(
            '`filter_gradient` must be "onednn", "matmul" or a list of rules, dicts with a "kernel" ("1x1" or '
            f'"kxk") and optionally {", ".join(RULE_KEYS[1:])} ("auto" is resolved by the hardware policy, '
            f"sagan_tf.machine.network_settings). Received: `filter_gradient={filter_gradient!r}`")
    return dict(rule)


def check_filter_gradient(filter_gradient):
    """The `filter_gradient` argument validated: "onednn", "matmul", or its rules as a tuple of dicts."""
    if isinstance(filter_gradient, str) and filter_gradient in FILTER_GRADIENTS:
        return filter_gradient
    if isinstance(filter_gradient, (str, dict)) or not isinstance(filter_gradient, (list, tuple)):
        _check_rule(None, filter_gradient)  # raises
    return tuple(_check_rule(rule, filter_gradient) for rule in filter_gradient)


def serialize_filter_gradient(filter_gradient):
    """The argument for `get_config`: the string, or the rules as a list of dicts (JSON and gin literals)."""
    return filter_gradient if isinstance(filter_gradient, str) else [dict(rule) for rule in filter_gradient]


def use_matmul_filter_gradient(filter_gradient, height, width, in_channels, out_channels, kernel_size):
    """Whether a stride-1 "same" convolution of [N, height, width, in_channels] by a kernel_size^2 kernel
    takes the matrix products: always for "matmul", never for "onednn"; for a rule list where a rule of its
    kernel ("1x1", or "kxk" for larger kernels) has min_positions <= height * width <= max_positions and
    min_channels <= min(in_channels, out_channels) (bounds left out do not limit)."""
    if isinstance(filter_gradient, str):
        return filter_gradient == "matmul"
    positions, channels = height * width, min(in_channels, out_channels)
    kernel = "1x1" if kernel_size == 1 else "kxk"
    return any(rule["kernel"] == kernel and positions >= rule.get("min_positions", 0)
               and (rule.get("max_positions") is None or positions <= rule["max_positions"])
               and channels >= rule.get("min_channels", 0) for rule in filter_gradient)


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


def conv2d(inputs, kernel, filter_gradient="onednn"):
    """tf.nn.conv2d(inputs, kernel, 1, "SAME") for NHWC inputs and a square odd kernel, with the filter
    gradient of `matmul_filter_gradient` where `use_matmul_filter_gradient(filter_gradient, ...)` says so."""
    kernel_size, _, in_channels, out_channels = kernel.shape
    height, width = inputs.shape[1], inputs.shape[2]
    if height is None or width is None or kernel_size % 2 == 0 or kernel.shape[1] != kernel_size or not (
            use_matmul_filter_gradient(filter_gradient, height, width, in_channels, out_channels, kernel_size)):
        return tf.nn.conv2d(inputs, kernel, 1, "SAME")

    @tf.custom_gradient
    def convolution(x, w):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=w, out_backprop=dy,
                                                strides=[1, 1, 1, 1], padding="SAME")
            return dx, matmul_filter_gradient(x, dy, kernel_size)

        return tf.nn.conv2d(x, w, 1, "SAME"), gradient

    return convolution(inputs, kernel)
