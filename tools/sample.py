"""Image grids from a trained generator: per class, for chosen classes, or interpolations between z's.

    python tools/sample.py --model_dir=runs/default --output=grid.png [--classes=0,3] [--per_class=8]
    python tools/sample.py --saved_model=export/1500 --output=grid.png --interpolate --steps=8

The command over `lab.sampling` (see there, or `--helpfull`).
"""

from lab import sampling
from sagan_tf import commands  # (no TensorFlow)

if __name__ == "__main__":
    sampling.define_flags()
    commands.run("tools/sample.py", sampling.main, __doc__)
