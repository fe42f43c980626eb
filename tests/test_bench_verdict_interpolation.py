"""The interpolation benchmark: its interpolation empties the outer k-space and nothing else, and its
result covers every acquired share and blur severity."""

from __future__ import annotations

import numpy as np

from qcgate.bench.verdict_interpolation import BAND, cells, displayed, interpolated, measure, report, slice_of
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


def test_display_interpolation_keeps_the_image_and_fills_the_finer_grid() -> None:
    image = clean_slice(FIRST_SEED, BAND)
    shown = displayed(image[::2, ::2], image.shape)
    assert shown.shape == image.shape
    assert abs(shown.mean() / image.mean() - 1.0) < 0.05


def test_a_header_cell_tells_its_share_and_a_blur_in_acquisition_is_shown_on_the_full_grid() -> None:
    image = clean_slice(FIRST_SEED, BAND)
    plain, told = slice_of(FIRST_SEED, ("interpolated", 0.45, None))
    with_header, told_share = slice_of(FIRST_SEED, ("interpolated, header", 0.45, None))
    assert told is None
    assert told_share == (0.45, 0.45)
    assert np.array_equal(plain, with_header)
    blurred, told_blur = slice_of(FIRST_SEED, ("blurred in acquisition, header", 0.28, 0.8))
    assert blurred.shape == image.shape
    assert told_blur == (0.28, 0.28)


def test_the_result_covers_every_cell() -> None:
    result = measure(images=1, jobs=1)
    assert [(cell["kind"], cell["acquired"], cell["blur"]) for cell in result["cells"]] == cells()
    assert all(cell["slices"] == 1 and cell["flagged"] in (0.0, 1.0) for cell in result["cells"])
    table = report(result)
    assert "acquired 28%" in table
    assert "blur 0.6" in table
