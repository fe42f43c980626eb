"""The benign re-storings: each is what its name says, and its series describes the clean geometry.

A phantom with a known object (an ellipse of two tissues in Rayleigh-noise air) on a non-square
matrix, so a transposition or a swapped spacing cannot pass unnoticed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qcgate.bench.quality.copies import RESTORE, CopySpec, applies_to, copy_specs, make_copy
from qcgate.bench.quality.real_images import EvaluationImage
from qcgate.bench.quality.restorings import (
    RESTORINGS,
    foreground_mask,
    restore,
    restoring_applies,
    series_datasets,
)
from qcgate.imaging.volume import Stack, build_stacks
from qcgate.synthetic.dicom_series import write_series

SHAPE = (5, 48, 64)  # (S, R, C): rows and columns differ
SPACING = (3.0, 0.8, 1.1)


def _object_mask() -> np.ndarray:
    rows, columns = np.mgrid[: SHAPE[1], : SHAPE[2]]
    ellipse = ((rows - 22) / 14.0) ** 2 + ((columns - 34) / 20.0) ** 2 <= 1.0
    return np.broadcast_to(ellipse, SHAPE).copy()


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    rng = np.random.default_rng(3)
    rows, _ = np.mgrid[: SHAPE[1], : SHAPE[2]]
    tissue = np.where(rows < 22, 800.0, 500.0)  # two tissues
    signal = np.where(_object_mask(), tissue, 0.0)
    noise = rng.normal(0.0, 20.0, (2, *SHAPE))
    return np.hypot(signal + noise[0], noise[1]).astype(np.float32)  # Rayleigh air, Rician tissue


def _image(volume: np.ndarray, axis: int = -2) -> EvaluationImage:
    return EvaluationImage(
        name="phantom",
        anatomy="test",
        volume=volume,
        spacing_mm=SPACING,
        phase_encode_axis=axis,
        orientation="axial",
        series_dir=Path("."),
        provenance={"kind": "real-evaluation"},
    )


def test_mirrors_and_transposition_are_exactly_what_they_say(phantom: np.ndarray) -> None:
    np.testing.assert_array_equal(restore(phantom, "flipped-rows")[0], phantom[:, ::-1, :])
    np.testing.assert_array_equal(restore(phantom, "flipped-columns")[0], phantom[:, :, ::-1])
    np.testing.assert_array_equal(restore(phantom, "transposed")[0], phantom.transpose(0, 2, 1))


@pytest.mark.parametrize(("name", "factor"), [("rescaled-x0.01", 0.01), ("rescaled-x100", 100.0)])
def test_rescaled_copies_multiply_every_intensity(phantom: np.ndarray, name: str, factor: float) -> None:
    volume, storage = restore(phantom, name)
    np.testing.assert_allclose(volume, phantom * factor, rtol=1e-6)
    assert storage.intensity_scale == factor


def test_the_foreground_mask_finds_the_object(phantom: np.ndarray) -> None:
    found, truth = foreground_mask(phantom), _object_mask()
    assert (found & truth).sum() / truth.sum() > 0.97
    assert (found & ~truth).sum() / truth.sum() < 0.05


def test_zero_filled_air_is_exactly_zero_outside_the_mask_and_untouched_inside(phantom: np.ndarray) -> None:
    volume, _ = restore(phantom, "zero-filled-air")
    outside = volume == 0.0
    assert not (outside & _object_mask()).any()  # all of the object is kept
    np.testing.assert_array_equal(volume[~outside], phantom[~outside])
    assert outside.mean() > 0.3  # most of the air is gone
    assert (phantom[outside] > 0).all()  # the zeros are new: the Rayleigh air had none


def test_the_crop_keeps_all_the_anatomy_and_cuts_the_rest(phantom: np.ndarray) -> None:
    volume, storage = restore(phantom, "cropped")
    _, top, left = storage.offset
    np.testing.assert_array_equal(
        volume, phantom[:, top : top + volume.shape[1], left : left + volume.shape[2]]
    )
    truth = _object_mask()
    assert truth[:, top : top + volume.shape[1], left : left + volume.shape[2]].sum() == truth.sum()
    assert volume.shape[1] < SHAPE[1]
    assert volume.shape[2] < SHAPE[2]


def test_padding_grows_the_matrix_by_half_with_zero_air(phantom: np.ndarray) -> None:
    volume, storage = restore(phantom, "padded-air")
    _, top, left = storage.offset
    assert volume.shape == (SHAPE[0], SHAPE[1] * 3 // 2, SHAPE[2] * 3 // 2)
    inner = volume[:, -top : -top + SHAPE[1], -left : -left + SHAPE[2]]
    np.testing.assert_array_equal(inner, phantom)
    assert volume.sum() == pytest.approx(phantom.sum())  # everything else is zero


def test_one_slice_is_the_middle_slice_and_only_for_volumes(phantom: np.ndarray) -> None:
    volume, storage = restore(phantom, "single-slice")
    np.testing.assert_array_equal(volume, phantom[SHAPE[0] // 2][None])
    assert storage.offset == (SHAPE[0] // 2, 0, 0)
    assert not restoring_applies("single-slice", phantom[:1])
    assert all(restoring_applies(name, phantom[:1]) for name in RESTORINGS if name != "single-slice")
    specs = copy_specs([], [], 0, RESTORINGS)
    assert sum(applies_to(spec, _image(phantom[:1])) for spec in specs) == len(specs) - 1


def test_restorings_are_deterministic(phantom: np.ndarray) -> None:
    for name in RESTORINGS:
        np.testing.assert_array_equal(restore(phantom, name)[0], restore(phantom.copy(), name)[0])


def test_unknown_restorings_are_refused(phantom: np.ndarray) -> None:
    with pytest.raises(ValueError, match='"name"'):
        restore(phantom, "rotated")
    with pytest.raises(ValueError, match='"restorings"'):
        copy_specs([], [], 0, ["rotated"])


def test_restored_copies_are_named_of_kind_restore_and_refer_to_the_clean_image(phantom: np.ndarray) -> None:
    specs = copy_specs(["noise"], [0.0, 1.0], 1, ["transposed", "cropped"])
    assert [s.name for s in specs] == [
        "clean",
        "noise@1",
        "random-00",
        "restore-transposed",
        "restore-cropped",
    ]
    copy = make_copy(_image(phantom), CopySpec("restore-transposed", RESTORE, 0.0), seed=1)
    clean = make_copy(_image(phantom), specs[0], seed=1)
    assert copy.reference == clean.reference
    assert copy.reference["ssim"] == 1.0
    assert copy.composite == clean.composite
    assert copy.applied == ()
    assert copy.storage is not None
    assert copy.provenance["kind"] == "real-evaluation"
    assert copy.provenance["restoring"] == "transposed"
    np.testing.assert_array_equal(copy.volume, phantom.transpose(0, 2, 1))


def _read_back(
    phantom: np.ndarray, name: str, directory: Path, acquired_share: tuple[float, float] | None = None
) -> tuple[Stack, list[pydicom.Dataset]]:
    volume, storage = restore(phantom, name)
    datasets = series_datasets(
        volume,
        storage,
        clean=phantom,
        spacing_mm=SPACING,
        orientation="axial",
        phase_encode_axis=-2,
        series_description=f"test {name}",
        patient_id="TEST",
        uid_seed=f"test {name}",
        acquired_share=acquired_share,
    )
    write_series(datasets, directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read = [pydicom.dcmread(path) for path in sorted(directory.glob("*.dcm"))]
        (stack,) = build_stacks(read)
    return stack, read


def _clean_units(phantom: np.ndarray) -> np.ndarray:
    return phantom * np.float32(4095.0 / phantom.max())  # as mr_series_datasets stores the clean copy


@pytest.mark.parametrize("name", RESTORINGS)
def test_each_restored_series_reads_back_as_the_restored_volume(
    phantom: np.ndarray, name: str, tmp_path: Path
) -> None:
    stack, _ = _read_back(phantom, name, tmp_path)
    expected = restore(_clean_units(phantom), name)[0]
    if name in ("flipped-rows", "flipped-columns", "transposed"):
        expected = expected[::-1]  # the slice normal turned: readers sort the slices the other way
    step = expected.max() / 65535 if name.startswith("rescaled") else 1.0  # one stored unit
    np.testing.assert_allclose(stack.voxels, expected, atol=0.51 * step)


def test_the_transposed_series_swaps_spacing_and_phase_encoding(phantom: np.ndarray, tmp_path: Path) -> None:
    stack, datasets = _read_back(phantom, "transposed", tmp_path)
    assert stack.spacing_mm == pytest.approx((SPACING[0], SPACING[2], SPACING[1]))
    assert stack.phase_encode_axis == 2  # clean: along the columns (1)
    assert datasets[0].InPlanePhaseEncodingDirection == "ROW"
    assert [float(v) for v in datasets[0].ImageOrientationPatient] == [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("transposed", (0.75, 0.5)), ("cropped", (0.5, 0.75)), ("padded-air", (0.5, 0.75))],
)
def test_a_restored_series_keeps_the_acquired_resolution_its_header_gave(
    phantom: np.ndarray, name: str, expected: tuple[float, float], tmp_path: Path
) -> None:
    # a crop or a pad keeps the pixel size and so the share per axis; a transposition swaps the axes
    stack, _ = _read_back(phantom, name, tmp_path, acquired_share=(0.5, 0.75))
    assert stack.acquired_share == pytest.approx(expected, abs=0.03)


def test_restored_series_place_every_voxel_where_the_clean_series_had_it(
    phantom: np.ndarray, tmp_path: Path
) -> None:
    """Voxel (0, 0) of a flipped, cropped or padded slice lies where that clean voxel lay."""
    _, clean = _read_back(phantom, "rescaled-x100", tmp_path / "clean")  # the clean grid, rescaled only
    origin = np.array(clean[0].ImagePositionPatient, dtype=float)
    row_step = np.array(clean[0].ImageOrientationPatient[3:], dtype=float) * SPACING[1]
    column_step = np.array(clean[0].ImageOrientationPatient[:3], dtype=float) * SPACING[2]
    for name in ("flipped-rows", "flipped-columns", "cropped", "padded-air"):
        _, read = _read_back(phantom, name, tmp_path / name)
        storage = restore(phantom, name)[1]
        first = next(ds for ds in read if int(ds.InstanceNumber) == 1)
        (r, c) = np.array(storage.offset[1:])
        expected = origin + r * row_step + c * column_step
        np.testing.assert_allclose(np.array(first.ImagePositionPatient, dtype=float), expected, atol=1e-3)


def test_rescaled_series_use_sixteen_bits_and_a_rescale_slope(phantom: np.ndarray, tmp_path: Path) -> None:
    stack, datasets = _read_back(phantom, "rescaled-x0.01", tmp_path)
    assert datasets[0].BitsStored == 16
    assert float(datasets[0].RescaleSlope) == pytest.approx(0.01 * 4095 / 65535, rel=1e-6)
    assert stack.voxels.max() == pytest.approx(0.01 * 4095, rel=1e-4)
