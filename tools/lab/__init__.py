"""The lab: the measurement machinery of the checkout, beside the `sagan_tf` library it measures.

`sagan_tf` is what a user installs and imports; the lab only imports it, never the other way round.
Every script in tools/ is a thin command over these modules (`python tools/x.py` puts tools/ on the
path, so `from lab import ...` works with `sagan_tf` installed):

- `timing`: the one timing loop (warm-up calls, then per-call seconds, and their median);
- `machine`: the one machine description (CPU model, ISA features, cores, float32 matmul rate);
- `records`: the one record format (command, commit, machine, figures) and its atomic writer;
- `experiments`: the experiment runner (spec, resumable stages with CPU accounting, baselines, report);
- `sampling`: image grids from a run or a SavedModel (tools/sample.py, the runner's grids);
- `docs`: generated blocks of the docs pages refilled from the records they quote.
"""
