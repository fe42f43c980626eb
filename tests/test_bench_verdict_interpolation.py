"""The interpolation benchmark: its interpolation empties the outer k-space and nothing else, and its
result covers every acquired share and blur severity."""

from __future__ import annotations

import numpy as np

from qcgate.bench.verdict_interpolation import BAND, BLUR_SEVERITIES, SHARES, interpolated, measure, report
from qcgate.bench.verdict_matrix import FIRST_SEED, clean_slice


def test_interpolation_keeps_the_acquired_centre_and_empties_the_rest() -> None:
    image = clean_slice(FIRST_SEED, BAND)
    assert interpolated(image, 1.0) is image
    half = interpolated(image, 0.5)

    def outer_power(x: np.ndarray) -> float:
        """Power outside the central half of k-space along the rows."""
        spectrum = np.abs(np.fft.fftshift(np.fft.fft2(x))) ** 2
        centre, quarter = x.shape[0] // 2, x.shape[0] // 4 + 2
        return float(spectrum[: centre - quarter].sum() + spectrum[centre + quarter :].sum())

    # the magnitude of the zero-filled image leaks a little back outside, nothing like the original
    assert outer_power(half) < 0.2 * outer_power(image)
    assert abs(half.mean() / image.mean() - 1.0) < 0.05


def test_the_result_covers_every_share_and_blur_severity() -> None:
    result = measure(images=1, jobs=1)
    assert [(cell["kind"], cell["amount"]) for cell in result["cells"]] == [
        *(("interpolated", share) for share in SHARES),
        *(("blurred", severity) for severity in BLUR_SEVERITIES),
    ]
    assert all(cell["slices"] == 1 and cell["flagged"] in (0.0, 1.0) for cell in result["cells"])
    table = report(result)
    assert "acquired 28%" in table
    assert "severity 0.6" in table
