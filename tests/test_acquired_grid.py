"""The acquired grid: what share of k-space a header says was acquired, the crop back to that grid,
and the verdict judging an interpolated series there only where the site turns it on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset

from qcgate.assessment.pipeline import assess_series
from qcgate.assessment.verdict import acquired_grids, judge_stacks, shipped_verdict_model
from qcgate.contract.resolution import MIN_SAMPLES, acquired_grid, acquired_shape
from qcgate.core.settings import Settings
from qcgate.imaging.acquisition import MIN_SHARE, acquired_share
from qcgate.imaging.volume import build_stacks
from qcgate.metrics.classic import ClassicMetrics
from qcgate.synthetic.demo_series import noisy_phantom
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series


def _lookup(**header: Any) -> Any:
    return lambda keyword: header.get(keyword)


def test_a_rectangular_interpolated_acquisition_reads_its_share_per_axis() -> None:
    # the header of a Siemens abdomen: 256 frequency x 134 phase samples, 75 % phase field of view,
    # shown at 484 x 484 with the phase down the columns (the rows' axis)
    first = _lookup(AcquisitionMatrix=[256, 0, 0, 134], PercentPhaseFieldOfView="75")
    share = acquired_share(first, (484, 484), (0.7231, 0.7231), 1)
    assert share == pytest.approx((134 / (0.75 * 484), 256 / 484), abs=1e-3)
    # the same acquisition with the phase along the rows names the other axis
    swapped = acquired_share(first, (484, 484), (0.7231, 0.7231), 2)
    assert swapped == pytest.approx((256 / 484, 134 / (0.75 * 484)), abs=1e-3)


def test_a_rectangular_field_of_view_at_full_resolution_is_not_interpolated() -> None:
    # 256 x 192 phase lines over a 75 % phase field of view, stored 256 x 192: nothing to undo
    first = _lookup(AcquisitionMatrix=[0, 256, 192, 0], PercentPhaseFieldOfView=75)
    assert acquired_share(first, (192, 256), (1.0, 1.0), 1) == (1.0, 1.0)
    # zero-padded to a square 256 x 256 display it still is not
    assert acquired_share(first, (256, 256), (1.0, 1.0), 1) == (1.0, 1.0)


def test_enhanced_mr_step_counts_are_read_like_the_acquisition_matrix() -> None:
    first = _lookup(MRAcquisitionFrequencyEncodingSteps=128, MRAcquisitionPhaseEncodingStepsInPlane=96)
    assert acquired_share(first, (256, 256), (1.0, 1.0), 2) == (0.5, 0.375)


@pytest.mark.parametrize(
    ("header", "phase_axis"),
    [
        pytest.param({"AcquisitionMatrix": [256, 0, 0, 134]}, None, id="no-phase-direction"),
        pytest.param({}, 1, id="no-matrix"),
        pytest.param({"AcquisitionMatrix": [0, 0, 0, 0]}, 1, id="all-zero"),
        pytest.param({"AcquisitionMatrix": [256, 0, 134]}, 1, id="three-values"),
        pytest.param({"AcquisitionMatrix": ["a", 0, 0, 1]}, 1, id="not-numbers"),
        pytest.param({"AcquisitionMatrix": [8, 0, 0, 8]}, 1, id="below-a-tenth"),
    ],
)
def test_a_header_that_does_not_say_gives_no_share(header: dict[str, Any], phase_axis: int | None) -> None:
    assert acquired_share(_lookup(**header), (512, 512), (0.5, 0.5), phase_axis) is None


def test_a_malformed_phase_field_of_view_reads_as_full_and_oversampling_caps_at_one() -> None:
    first = _lookup(AcquisitionMatrix=[0, 512, 128, 0], PercentPhaseFieldOfView="999")
    assert acquired_share(first, (256, 256), (1.0, 1.0), 1) == (0.5, 1.0)


def _series(tmp_path: Path, share: tuple[float, float] | None, name: str = "t1") -> list[Path]:
    datasets = mr_series_datasets(
        noisy_phantom((8, 128, 128)), series_description=name, phase_encoding="COL", acquired_share=share
    )
    return write_series(datasets, tmp_path / name)


@pytest.mark.parametrize("phase_encoding", ["ROW", "COL"])
@pytest.mark.parametrize("share", [None, (0.5, 0.75), (1.0, 0.4)])
def test_the_writers_header_reads_back_as_the_share_it_was_given(
    phase_encoding: str, share: tuple[float, float] | None
) -> None:
    # a non-square matrix of non-square pixels: the phase field of view is not the frequency one
    datasets = mr_series_datasets(
        np.ones((8, 96, 128), np.float32),
        series_description="t1",
        spacing_mm=(3.0, 1.0, 1.5),
        phase_encoding=phase_encoding,  # type: ignore[arg-type]
        acquired_share=share,
    )
    (stack,) = build_stacks(datasets)
    assert stack.acquired_share == pytest.approx(share or (1.0, 1.0), abs=0.01)


def test_a_stack_carries_the_share_its_slices_agree_on(tmp_path: Path) -> None:
    files = _series(tmp_path, (0.375, 0.5))
    (stack,) = build_stacks([pydicom.dcmread(path) for path in files])
    assert stack.acquired_share == (0.375, 0.5)
    assert acquired_grids([stack]) == {stack.label: [48, 64]}
    datasets = [pydicom.dcmread(path) for path in files]
    datasets[0].AcquisitionMatrix = [0, 64, 64, 0]
    (mixed,) = build_stacks(datasets)
    assert mixed.acquired_share is None


def _band_limited(
    shape: tuple[int, int], kept: tuple[int, int], seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """(an image on ``kept``, the same shown on ``shape`` by zero-filling its k-space)."""
    small = np.random.default_rng(seed).uniform(50.0, 100.0, kept)
    spectrum = np.zeros(shape, complex)
    top, left = shape[0] // 2 - kept[0] // 2, shape[1] // 2 - kept[1] // 2
    spectrum[top : top + kept[0], left : left + kept[1]] = np.fft.fftshift(np.fft.fft2(small))
    shown = np.fft.ifft2(np.fft.ifftshift(spectrum)).real * (shape[0] * shape[1]) / (kept[0] * kept[1])
    return small, shown


def test_the_crop_undoes_zero_filled_interpolation() -> None:
    # odd acquired sizes: an even one's Nyquist line has no partner, and a real image keeps half of it
    small, shown = _band_limited((200, 160), (101, 65))
    share = (101 / 200, 65 / 160)
    assert acquired_shape(shown.shape, share) == (101, 65)
    back = acquired_grid(shown, share)
    assert back.shape == (101, 65)
    assert np.max(np.abs(back - small)) < 1e-3 * small.mean()
    volume = acquired_grid(np.stack([shown, shown]), share)
    assert volume.shape == (2, 101, 65)


def test_an_axis_acquired_in_full_or_no_share_leaves_the_stack_as_it_is() -> None:
    image = np.ones((64, 64), np.float32)
    assert acquired_grid(image, None) is image
    assert acquired_grid(image, (0.95, 1.0)) is image
    assert acquired_shape((256, 100), (0.1, 0.5)) == (MIN_SAMPLES, 50)


def test_zero_filled_air_stays_zero_and_magnitudes_stay_non_negative() -> None:
    _, shown = _band_limited((128, 128), (64, 64))
    shown = np.pad(shown, 40)  # zero-filled air around the anatomy
    back = acquired_grid(shown, (0.5, 0.5))
    assert back.min() >= 0.0
    assert np.all(back[:12] == 0.0)
    assert np.all(back[:, -12:] == 0.0)
    assert back[back.shape[0] // 2, back.shape[1] // 2] > 0.0


def test_the_verdict_reads_the_acquired_grid_only_when_told() -> None:
    model = shipped_verdict_model()
    _, shown = _band_limited((192, 192), (96, 72))
    shown = shown + np.random.default_rng(5).normal(0.0, 2.0, shown.shape)
    share = (0.5, 0.375)
    told = model.assess(shown, acquired_share=share)
    assert told.quality == model.assess(acquired_grid(shown, share)).quality
    assert model.assess(shown, acquired_share=None).quality == model.assess(shown).quality


def test_the_pipeline_judges_the_acquired_grid_where_the_site_turns_it_on(tmp_path: Path) -> None:
    assert Settings().verdict_acquired_grid is False
    files = _series(tmp_path, (0.375, 0.5))
    plain = assess_series(files, [ClassicMetrics()], {}).document()
    told = assess_series(files, [ClassicMetrics()], {}, acquired_grid=True).document()
    assert "acquired_grid" not in plain["provenance"]["verdict"]
    (label,) = told["provenance"]["verdict"]["acquired_grid"]
    assert told["provenance"]["verdict"]["acquired_grid"][label] == [48, 64]
    stacks = build_stacks([pydicom.dcmread(path) for path in files])
    model = shipped_verdict_model()
    assert plain["quality"] == judge_stacks(stacks, model).quality
    assert told["quality"] == judge_stacks(stacks, model, acquired_grid=True).quality


def test_a_series_with_a_full_acquisition_matrix_is_judged_as_before(tmp_path: Path) -> None:
    files = _series(tmp_path, None)  # the writer's own full matrix
    plain = assess_series(files, [ClassicMetrics()], {}).document()
    told = assess_series(files, [ClassicMetrics()], {}, acquired_grid=True).document()
    assert told["provenance"]["verdict"]["acquired_grid"] == {}
    assert told["quality"] == plain["quality"]
    assert told["findings"] == plain["findings"]


def test_a_dataset_is_only_read_through_its_keywords() -> None:
    ds = Dataset()
    ds.AcquisitionMatrix = [0, 128, 64, 0]
    ds.InPlanePhaseEncodingDirection = "COL"
    assert acquired_share(ds.get, (128, 128), (1.0, 1.0), 1) == (0.5, 1.0)


_HEADER_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-5, 70000), st.floats(), st.text(max_size=3)), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(
    matrix=_HEADER_VALUES,
    frequency_steps=_HEADER_VALUES,
    phase_steps=_HEADER_VALUES,
    percent=_HEADER_VALUES,
    shape=st.tuples(st.integers(1, 2048), st.integers(1, 2048)),
    spacing=st.one_of(st.none(), st.tuples(st.floats(), st.floats())),
    phase_axis=st.sampled_from([None, 1, 2, 3]),
)
def test_any_header_gives_no_share_or_one_within_range(
    matrix: Any,
    frequency_steps: Any,
    phase_steps: Any,
    percent: Any,
    shape: tuple[int, int],
    spacing: tuple[float, float] | None,
    phase_axis: int | None,
) -> None:
    header = {
        "AcquisitionMatrix": matrix,
        "MRAcquisitionFrequencyEncodingSteps": frequency_steps,
        "MRAcquisitionPhaseEncodingStepsInPlane": phase_steps,
        "PercentPhaseFieldOfView": percent,
    }
    share = acquired_share(_lookup(**header), shape, spacing, phase_axis)
    assert share is None or all(MIN_SHARE <= value <= 1.0 for value in share)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 160), st.integers(1, 160)),
    share=st.tuples(st.floats(0.1, 1.0), st.floats(0.1, 1.0)),
    zeros=st.booleans(),
)
def test_the_crop_keeps_its_promised_shape_and_stays_finite(
    shape: tuple[int, int, int], share: tuple[float, float], zeros: bool
) -> None:
    volume = np.random.default_rng(1).uniform(0.0, 100.0, shape).astype(np.float32)
    if zeros:
        volume[:, : shape[1] // 3] = 0.0
    cropped = acquired_grid(volume, share)
    assert cropped.shape == (shape[0], *acquired_shape(shape[1:], share))
    assert np.all(np.isfinite(cropped))
    assert cropped.min() >= 0.0
