"""build_stacks on real pydicom test files and on synthetic series with known geometry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset

from qcgate.core.errors import NotAssessable
from qcgate.imaging.volume import build_stacks
from qcgate.synthetic.dicom_series import write_series
from qcgate.synthetic.instances import AXIAL, CORONAL, SAGITTAL, enhanced_mr, mr_series


def _read(name: str) -> FileDataset:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is not available"
    return pydicom.dcmread(path)


def _round_trip(datasets: list[FileDataset], directory: Path) -> list[FileDataset]:
    """Write and read back, so the code under test sees what a receiver would store."""
    return [pydicom.dcmread(path) for path in write_series(datasets, directory)]


def _ramp(slices: int, rows: int = 4, cols: int = 5) -> np.ndarray:
    """Stored values whose every slice is filled with its own index, so order is visible."""
    return np.repeat(np.arange(slices, dtype=np.uint16), rows * cols).reshape(slices, rows, cols)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
    ],
)
def test_classic_mr_in_every_transfer_syntax_gives_the_same_stack(name: str) -> None:
    reference = _read("MR_small.dcm").pixel_array.astype(np.float32)

    (stack,) = build_stacks([_read(name)])

    assert stack.voxels.dtype == np.float32
    assert stack.voxels.shape == (1, 64, 64)
    np.testing.assert_array_equal(stack.voxels[0], reference)
    assert stack.spacing_mm == pytest.approx((0.8, 0.3125, 0.3125))
    assert stack.label == "axial"
    assert stack.phase_encode_axis is None


@pytest.mark.parametrize(
    "name",
    [
        "emri_small.dcm",
        "emri_small_RLE.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "emri_small_big_endian.dcm",
    ],
)
def test_enhanced_mr_without_geometry_keeps_frame_order_and_says_so(name: str) -> None:
    reference = _read("emri_small.dcm").pixel_array.astype(np.float32)

    (stack,) = build_stacks([_read(name)])

    np.testing.assert_array_equal(stack.voxels, reference)
    assert stack.spacing_mm == (1.2, 1.0, 1.0)  # SpacingBetweenSlices; no PixelSpacing in the file
    assert "no geometry" in stack.label
    assert "1 mm assumed" in stack.label
    assert len(stack.sop_instance_uids) == 10


def test_rescale_and_phase_direction_of_a_real_oblique_slice() -> None:
    ds = _read("MR2_UNCR.dcm")

    (stack,) = build_stacks([ds])

    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(stack.voxels[0], expected, rtol=1e-6)
    assert stack.label == "oblique"  # normal (-0.82, 0.57, 0): 35 degrees from the x axis
    assert stack.phase_encode_axis == 1  # InPlanePhaseEncodingDirection COL
    assert stack.spacing_mm == pytest.approx((6.0, 0.195313, 0.195313))


def test_lossless_jpeg_2000_matches_uncompressed() -> None:
    (compressed,) = build_stacks([_read("MR2_J2KR.dcm")])
    (uncompressed,) = build_stacks([_read("MR2_UNCR.dcm")])

    np.testing.assert_array_equal(compressed.voxels, uncompressed.voxels)


def test_enhanced_functional_groups_give_geometry_and_shared_rescale() -> None:
    ds = _read("eCT_Supplemental.dcm")  # real Enhanced layout: frame 1 at z=-159, frame 2 at z=-149

    (stack,) = build_stacks([ds])

    # Row (-1,0,0) x column (0,1,0) gives normal (0,0,-1): z=-149 comes first along it.
    expected = ds.pixel_array[::-1].astype(np.float32) - 1024.0
    np.testing.assert_array_equal(stack.voxels, expected)
    assert stack.spacing_mm == pytest.approx((10.0, 0.388672, 0.388672))
    assert stack.label == "axial"


def test_colour_images_are_not_assessable() -> None:
    with pytest.raises(NotAssessable, match="colour"):
        build_stacks([_read("SC_rgb.dcm")])


def test_empty_series_is_not_assessable() -> None:
    with pytest.raises(NotAssessable, match="no instances"):
        build_stacks([])


def test_instance_without_pixel_data_is_not_assessable() -> None:
    ds = mr_series(_ramp(1))[0]
    del ds.PixelData

    with pytest.raises(NotAssessable, match="no Pixel Data"):
        build_stacks([ds])


def test_slices_are_sorted_along_the_normal_and_rescaled(tmp_path: Path) -> None:
    # InstanceNumbers 1, 2, 3 lie at z = 20, 0, 10: geometry, not numbering, must decide the order.
    series = mr_series(
        _ramp(3),
        positions=[(0.0, 0.0, 20.0), (0.0, 0.0, 0.0), (0.0, 0.0, 10.0)],
        pixel_spacing=(0.5, 0.7),
        slope=2.0,
        intercept=-10.0,
        phase_direction="ROW",
    )
    datasets = _round_trip(series, tmp_path)

    (stack,) = build_stacks(datasets[::-1])

    assert stack.voxels.dtype == np.float32
    np.testing.assert_array_equal(stack.voxels[:, 0, 0], [2.0 * 1 - 10, 2.0 * 2 - 10, 2.0 * 0 - 10])
    assert stack.sop_instance_uids == tuple(series[i].SOPInstanceUID for i in (1, 2, 0))
    assert stack.spacing_mm == pytest.approx((10.0, 0.5, 0.7))
    assert stack.phase_encode_axis == 2
    assert stack.label == "axial"


def test_sagittal_slices_follow_their_own_normal(tmp_path: Path) -> None:
    # Row (0,1,0) x column (0,0,-1) = (-1,0,0): the slice at x = +5 comes before x = -5.
    series = mr_series(_ramp(2), orientation=SAGITTAL, positions=[(-5.0, 0.0, 0.0), (5.0, 0.0, 0.0)])

    (stack,) = build_stacks(_round_trip(series, tmp_path))

    np.testing.assert_array_equal(stack.voxels[:, 0, 0], [1.0, 0.0])
    assert stack.label == "sagittal"
    assert stack.spacing_mm[0] == pytest.approx(10.0)


def test_three_plane_localizer_splits_by_orientation(tmp_path: Path) -> None:
    series = []
    for orientation in (AXIAL, SAGITTAL, CORONAL):
        series += mr_series(_ramp(3), orientation=orientation, series_uid="1.2.3.4")
    for number, ds in enumerate(series, start=1):
        ds.InstanceNumber = number

    stacks = build_stacks(_round_trip(series, tmp_path))

    assert [stack.label for stack in stacks] == ["axial", "sagittal", "coronal"]
    assert all(stack.voxels.shape == (3, 4, 5) for stack in stacks)


def test_orientation_jitter_within_tolerance_stays_one_stack(tmp_path: Path) -> None:
    series = mr_series(_ramp(2))
    series[1].ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.9999999, 0.0004]

    (stack,) = build_stacks(_round_trip(series, tmp_path))

    assert stack.voxels.shape[0] == 2


def test_a_tilted_plane_is_oblique() -> None:
    tilt = math.sqrt(0.5)  # 45 degrees about x: normal (0, -0.71, 0.71)
    (stack,) = build_stacks(mr_series(_ramp(2), orientation=(1.0, 0.0, 0.0, 0.0, tilt, tilt)))

    assert stack.label == "oblique"


def test_different_matrix_sizes_in_one_plane_split(tmp_path: Path) -> None:
    small = mr_series(_ramp(2, rows=4, cols=4), series_uid="1.2.3.5")
    large = mr_series(_ramp(2, rows=8, cols=8), series_uid="1.2.3.5")
    for number, ds in enumerate(small + large, start=1):
        ds.InstanceNumber = number

    stacks = build_stacks(_round_trip(small + large, tmp_path))

    assert [stack.voxels.shape for stack in stacks] == [(2, 4, 4), (2, 8, 8)]
    assert [stack.label for stack in stacks] == ["axial #1", "axial #2"]


def _four_d(temporal: bool) -> list[FileDataset]:
    """Three volumes of four slices, acquired volume by volume; each voxel holds 10 * t + slice."""
    volumes, slices = 3, 4
    stored = (10 * np.arange(volumes)[:, None] + np.arange(slices)[None, :]).astype(np.uint16)
    stored = np.repeat(stored.reshape(-1), 4).reshape(-1, 2, 2)
    positions = [(0.0, 0.0, 2.0 * s) for _ in range(volumes) for s in range(slices)]
    return mr_series(
        stored,
        positions=positions,
        temporal_positions=[t + 1 for t in range(volumes) for _ in range(slices)] if temporal else None,
    )


@pytest.mark.parametrize("temporal", [True, False], ids=["TemporalPositionIdentifier", "repeated-positions"])
def test_4d_series_split_into_one_stack_per_volume(temporal: bool, tmp_path: Path) -> None:
    datasets = _round_trip(_four_d(temporal), tmp_path)

    stacks = build_stacks(datasets[::-1])

    assert [stack.label for stack in stacks] == ["axial t=1", "axial t=2", "axial t=3"]
    for t, stack in enumerate(stacks):
        np.testing.assert_array_equal(stack.voxels[:, 0, 0], 10 * t + np.arange(4))
        assert stack.spacing_mm[0] == pytest.approx(2.0)


def test_synthetic_enhanced_mr_uses_per_frame_positions_and_shared_groups(tmp_path: Path) -> None:
    ds = enhanced_mr(
        _ramp(3),
        positions=[(0.0, 0.0, 6.0), (0.0, 0.0, 0.0), (0.0, 0.0, 3.0)],
        pixel_spacing=(0.9, 0.8),
        slope=0.5,
        intercept=100.0,
        phase_direction="COL",
    )

    (stack,) = build_stacks(_round_trip([ds], tmp_path))

    np.testing.assert_array_equal(stack.voxels[:, 0, 0], [100.5, 101.0, 100.0])
    assert stack.spacing_mm == pytest.approx((3.0, 0.9, 0.8))
    assert stack.phase_encode_axis == 1
    assert stack.sop_instance_uids == (ds.SOPInstanceUID,) * 3


def test_enhanced_mr_4d_splits_by_temporal_position_index(tmp_path: Path) -> None:
    ds = enhanced_mr(
        _ramp(4),
        positions=[(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)] * 2,
        temporal_positions=[1, 1, 2, 2],
    )

    stacks = build_stacks(_round_trip([ds], tmp_path))

    assert [stack.label for stack in stacks] == ["axial t=1", "axial t=2"]
    np.testing.assert_array_equal(stacks[1].voxels[:, 0, 0], [2.0, 3.0])


def test_without_geometry_slices_follow_instance_number(tmp_path: Path) -> None:
    series = mr_series(_ramp(3))
    for ds, number in zip(series, (3, 1, 2), strict=True):
        del ds.ImagePositionPatient
        ds.InstanceNumber = number

    (stack,) = build_stacks(_round_trip(series, tmp_path))

    np.testing.assert_array_equal(stack.voxels[:, 0, 0], [1.0, 2.0, 0.0])
    assert stack.label == "unknown orientation (no geometry: ordered by InstanceNumber)"
