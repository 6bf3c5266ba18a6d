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

The stride-2 4x4 convolutions of the fused resampling forms (`sagan_tf.layers.resampling`) take the same
argument (`conv2d_stride2`, `conv2d_transpose_stride2`): their filter gradient is one matrix product of the
high-resolution side's 4x4 patches with the low-resolution side (`matmul_filter_gradient_stride2`), where
oneDNN's kernel is slow for few positions and many channels (on a 2-core AMD EPYC, 8x8 -> 4x4 with 1,024
channels ran at about 0.3 of the float32 matmul rate with AVX-512 kernels and 0.2 with AVX2 ones).
"""


import tensorflow as tf

FILTER_GRADIENTS = ("onednn", "matmul")  # besides a rule list
RULE_KEYS = ("kernel", "min_positions", "max_positions", "min_channels")
# A rule's kernel: 1x1, larger stride-1 kernels, or the stride-2 4x4 kernels of the fused resampling forms.
RULE_KERNELS = ("1x1", "kxk", "4x4/2")


def _check_rule(rule, filter_gradient):
    if not isinstance(rule, dict) or set(rule) - set(RULE_KEYS) or rule.get("kernel") not in RULE_KERNELS:
        raise ValueError(
            '`filter_gradient` must be "onednn", "matmul" or a list of rules, dicts with a "kernel" ('
            + ", ".join(f'"{kernel}"' for kernel in RULE_KERNELS) + f') and optionally {", ".join(RULE_KEYS[1:])} '
            f'("auto" is resolved by the hardware policy, sagan_tf.machine.network_settings). '
            f"Received: `filter_gradient={filter_gradient!r}`")
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


def use_matmul_filter_gradient(filter_gradient, height, width, in_channels, out_channels, kernel_size, stride=1):
    """Whether a "same" convolution of [N, height, width, in_channels] by a kernel_size^2 kernel takes the
    matrix products: always for "matmul", never for "onednn"; for a rule list where a rule of its kernel
    ("1x1", "kxk" for larger stride-1 kernels, "4x4/2" for stride 2, where height and width are the
    high-resolution side's) has min_positions <= height * width <= max_positions and min_channels <=
    min(in_channels, out_channels) (bounds left out do not limit)."""
    if isinstance(filter_gradient, str):
        return filter_gradient == "matmul"
    positions, channels = height * width, min(in_channels, out_channels)
    kernel = "4x4/2" if stride == 2 else "1x1" if kernel_size == 1 else "kxk"
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

    return _with_filter_gradient(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), _input_gradient(1),
                                 lambda x, dy: matmul_filter_gradient(x, dy, kernel_size))(inputs, kernel)


def _with_filter_gradient(forward, input_gradient, filter_gradient):
    """forward(x, w) as a function of (x, w) whose gradients are input_gradient(x, w, dy) and
    filter_gradient(x, dy)."""

    @tf.custom_gradient
    def convolution(x, w):
        return forward(x, w), lambda dy: (input_gradient(x, w, dy), filter_gradient(x, dy))

    return convolution


def _input_gradient(stride):
    """The input gradient of tf.nn.conv2d(x, w, stride, "SAME"), TensorFlow's."""
    return lambda x, w, dy: tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=w, out_backprop=dy,
                                                           strides=[1, stride, stride, 1], padding="SAME")


def matmul_filter_gradient_stride2(inputs, output_gradient):
    """dL/dW [4, 4, C_in, C_out] of tf.nn.conv2d(inputs, W, 2, "SAME") for inputs of even height and width
    (padded by 1 on each side): one matrix product of the inputs' 4x4 patches at stride 2, a copy of 4x the
    inputs, with the output gradient."""
    in_channels, out_channels = inputs.shape[-1], output_gradient.shape[-1]
    padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
    patches = tf.image.extract_patches(padded, [1, 4, 4, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")  # taps row-major
    product = tf.matmul(tf.reshape(patches, [-1, 16 * in_channels]),  # [N H W / 4, 16 C_in]
                        tf.reshape(output_gradient, [-1, out_channels]), transpose_a=True)
    return tf.reshape(product, [4, 4, in_channels, out_channels])


def _stride2_takes_matmul(filter_gradient, height, width, kernel):
    """Whether a stride-2 4x4 convolution whose high-resolution side is height x width (both known and even)
    takes `matmul_filter_gradient_stride2`."""
    if kernel.shape[0] != 4 or kernel.shape[1] != 4 or height is None or width is None or height % 2 or width % 2:
        return False
    return use_matmul_filter_gradient(filter_gradient, height, width, kernel.shape[2], kernel.shape[3], 4, stride=2)


def conv2d_stride2(inputs, kernel, filter_gradient="onednn"):
    """tf.nn.conv2d(inputs, kernel, 2, "SAME") for NHWC inputs of even height and width and a 4x4 kernel (the
    fused downsampling form), with the filter gradient of `matmul_filter_gradient_stride2` where
    `use_matmul_filter_gradient(filter_gradient, ..., stride=2)` says so for the inputs' size."""
    if not _stride2_takes_matmul(filter_gradient, inputs.shape[1], inputs.shape[2], kernel):
        return tf.nn.conv2d(inputs, kernel, 2, "SAME")

    return _with_filter_gradient(lambda x, w: tf.nn.conv2d(x, w, 2, "SAME"), _input_gradient(2),
                                 matmul_filter_gradient_stride2)(inputs, kernel)


def conv2d_transpose_stride2(inputs, kernel, filter_gradient="onednn"):
    """tf.nn.conv2d_transpose with stride 2 and "same" padding of NHWC inputs by a [4, 4, C_out, C_in] kernel
    to twice their height and width (the fused upsampling form), with the filter gradient of
    `matmul_filter_gradient_stride2` where `use_matmul_filter_gradient(filter_gradient, ..., stride=2)` says
    so for the output's size (known sizes only). The transposed convolution is the adjoint of the stride-2 one
    with the same kernel, so its filter gradient is that convolution's with the roles of input and output
    gradient swapped."""
    shape = tf.shape(inputs)
    height, width = inputs.shape[1], inputs.shape[2]
    output_shape = tf.stack([shape[0], 2 * (shape[1] if height is None else height),
                             2 * (shape[2] if width is None else width), kernel.shape[2]])
    if None in (height, width) or not _stride2_takes_matmul(filter_gradient, 2 * height, 2 * width, kernel):
        return tf.nn.conv2d_transpose(inputs, kernel, output_shape, 2, "SAME")

    return _with_filter_gradient(lambda x, w: tf.nn.conv2d_transpose(x, w, output_shape, 2, "SAME"),
                                 lambda x, w, dy: tf.nn.conv2d(dy, w, 2, "SAME"),
                                 lambda x, dy: matmul_filter_gradient_stride2(dy, x))(inputs, kernel)
