"""FLOPs of a traced TensorFlow function, counted with the per-op statistics TensorFlow registers: the lab's
FLOP figures (tools/bench_train.py, tools/bench_eval.py)."""


# The operations that the peer's figure counts ("convs + matmuls, forward and backward").
MATMUL_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "DepthwiseConv2dNative", "MatMul",
                   "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def matmul_conv_flops(counts):
    """The FLOPs of `count_flops` that the figures use: convolutions and matrix products (MATMUL_CONV_OPS)."""
    return sum(v for k, v in counts.items() if k in MATMUL_CONV_OPS)


def live_ops(graph):
    """The ops of a traced function that run: those its outputs or its stateful ops (variable updates,
    random draws) depend on. TensorFlow prunes the rest when it instantiates the function; e.g. the
    gradient of the G step also builds D's weight gradients (the Conv2D gradient always makes both),
    which nothing uses and which never run (a profile of the step shows their kernels only in the D step)."""
    kept = [t.op for t in getattr(graph, "outputs", []) if t is not None]
    kept += [op for op in graph.get_operations() if op.op_def is not None and op.op_def.is_stateful]
    return ancestors(kept)


def ancestors(ops):
    """`ops` and every op they wait for, through data and control edges."""
    found, stack = set(), list(ops)
    while stack:
        op = stack.pop()
        if op in found:
            continue
        found.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return found


def count_flops(graph):
    """{op type: floating-point operations} of one call of a traced graph, nested functions included.

    Uses the FLOP statistics TensorFlow registers per op type (2 per multiply-add for convolutions
    and matrix products, their gradients included); ops without a registered count are skipped, and so
    are the ops that never run (`live_ops`).
    """
    from tensorflow.python.framework import ops as tf_ops

    counts = {}
    live = live_ops(graph)
    for op in graph.get_operations():
        if op not in live:
            continue
        for attr in ("f", "then_branch", "else_branch", "body", "cond"):
            try:
                name = op.get_attr(attr).name
            except (ValueError, AttributeError):
                continue
            function = graph._get_function(name)  # noqa: SLF001  (no public accessor)
            if function is not None and hasattr(function, "graph"):
                for key, value in count_flops(function.graph).items():
                    counts[key] = counts.get(key, 0) + value
        try:
            value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # no statistics registered for this op type
            continue
        if value:
            counts[op.type] = counts.get(op.type, 0) + int(value)
    return counts
