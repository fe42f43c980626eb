"""The synthetic phantom, its degradations and the DICOM series written from it, checked against
known answers: dciodvfy for the standard, geometry and noise statistics computed by hand."""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.config import strict_reading

from qcgate.synthetic.dicom_series import Orientation, PhaseEncoding, mr_series_datasets, write_series
from qcgate.synthetic.volumes import add_rician_noise, blur, phantom_volume
from tests.mni import MNI_SPACING_MM, mni_t1_volume

SMALL = (12, 64, 48)

# Known answers in the patient (LPS) frame: row cosine, column cosine, slice normal.
EXPECTED_GEOMETRY: dict[Orientation, tuple[tuple[int, int, int], ...]] = {
    "axial": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "sagittal": ((0, 1, 0), (0, 0, -1), (-1, 0, 0)),
    "coronal": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
}


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy reports for one file; fails the test if dciodvfy is missing."""
    executable = shutil.which("dciodvfy")
    if executable is None:
        pytest.fail("dciodvfy not found: install the Debian package dicom3tools (make test does)")
    result = subprocess.run([executable, str(path)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    assert "MRImage" in output, f"dciodvfy did not recognise an MR Image:\n{output}"
    return [line for line in output.splitlines() if line.startswith("Error")]


def read_back(paths: list[Path]) -> list[pydicom.Dataset]:
    with strict_reading():
        return [pydicom.dcmread(path) for path in paths]


@pytest.mark.parametrize("orientation", sorted(EXPECTED_GEOMETRY))
@pytest.mark.parametrize("phase_encoding", ["ROW", "COL"])
def test_written_series_passes_dciodvfy(
    tmp_path: Path, orientation: Orientation, phase_encoding: PhaseEncoding
) -> None:
    datasets = mr_series_datasets(
        phantom_volume(SMALL, seed=1),
        series_description="T1 phantom",
        orientation=orientation,
        phase_encoding=phase_encoding,
        spacing_mm=(1 / 3, 0.9, 1.1),
    )
    paths = write_series(datasets, tmp_path)
    assert [path.name for path in paths] == [f"{k:04d}.dcm" for k in range(1, SMALL[0] + 1)]
    for path in (paths[0], paths[len(paths) // 2], paths[-1]):
        assert dciodvfy_errors(path) == []


def test_rescaled_series_passes_dciodvfy(tmp_path: Path) -> None:
    datasets = mr_series_datasets(
        1000.0 * phantom_volume(SMALL), series_description="rescaled", rescale=(0.5, -10.0)
    )
    assert dciodvfy_errors(write_series(datasets, tmp_path)[0]) == []


@pytest.mark.slow  # renders the MNI template and runs dciodvfy: about 1.5 s
def test_mni_template_series_passes_dciodvfy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("loading the MNI template tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    volume = mni_t1_volume()
    assert volume.dtype == np.float32
    assert volume.shape == (189, 233, 197)
    # Slices run inferior to superior: the template's neck fills the first slices, air the last.
    assert volume[:20].mean() > 0.01
    assert volume[-20:].max() == 0.0
    datasets = mr_series_datasets(volume, series_description="MNI152 T1", spacing_mm=MNI_SPACING_MM)
    paths = write_series(datasets, tmp_path)
    for path in (paths[0], paths[len(paths) // 2], paths[-1]):
        assert dciodvfy_errors(path) == []


@pytest.mark.parametrize("orientation", sorted(EXPECTED_GEOMETRY))
def test_positions_step_along_the_slice_normal_by_the_slice_spacing(
    tmp_path: Path, orientation: Orientation
) -> None:
    spacing = (2.5, 0.8, 1.2)
    datasets = mr_series_datasets(
        phantom_volume(SMALL),
        series_description="geometry",
        orientation=orientation,
        spacing_mm=spacing,
    )
    read = read_back(write_series(datasets, tmp_path))
    row, column, normal = (np.array(v, dtype=float) for v in EXPECTED_GEOMETRY[orientation])
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in read])
    for ds in read:
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [*row, *column])
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], spacing[1:])
        assert float(ds.SliceThickness) == pytest.approx(spacing[0])
    np.testing.assert_allclose(np.diff(positions, axis=0), np.tile(spacing[0] * normal, (len(read) - 1, 1)))
    np.testing.assert_allclose([float(ds.SliceLocation) for ds in read], positions @ normal)
    centre = positions[0] + 0.5 * ((SMALL[1] - 1) * spacing[1] * column + (SMALL[2] - 1) * spacing[2] * row)
    np.testing.assert_allclose(centre + 0.5 * (positions[-1] - positions[0]), 0.0, atol=1e-9)


def test_pixel_values_round_trip_through_the_rescale(tmp_path: Path) -> None:
    slope, intercept = 0.25, -100.0
    volume = 2000.0 * phantom_volume(SMALL) - 50.0
    read = read_back(
        write_series(
            mr_series_datasets(volume, series_description="rescale", rescale=(slope, intercept)), tmp_path
        )
    )
    values = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in read])
    assert read[0].pixel_array.dtype == np.uint16
    np.testing.assert_allclose(values, volume, atol=slope / 2 + 1e-3)


def test_without_rescale_the_volume_is_scaled_into_twelve_bits(tmp_path: Path) -> None:
    volume = phantom_volume(SMALL)
    read = read_back(write_series(mr_series_datasets(volume, series_description="12 bit"), tmp_path))
    stored = np.stack([ds.pixel_array for ds in read])
    assert (read[0].BitsStored, stored.min(), stored.max()) == (12, 0, 4095)
    np.testing.assert_allclose(stored, volume * 4095 / volume.max(), atol=0.5 + 1e-3)


def test_acquisition_matrix_follows_the_phase_encoding_direction() -> None:
    volume = phantom_volume(SMALL)
    row = mr_series_datasets(volume, series_description="pe", phase_encoding="ROW")[0]
    col = mr_series_datasets(volume, series_description="pe", phase_encoding="COL")[0]
    rows, columns = SMALL[1:]
    assert (row.InPlanePhaseEncodingDirection, list(row.AcquisitionMatrix)) == ("ROW", [rows, 0, 0, columns])
    assert (col.InPlanePhaseEncodingDirection, list(col.AcquisitionMatrix)) == ("COL", [0, columns, rows, 0])


def test_uid_seed_reproduces_a_series_and_series_of_a_study_share_a_frame() -> None:
    volume = phantom_volume(SMALL)
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    first, again = (
        mr_series_datasets(volume, series_description="a", uid_seed="demo", study_datetime=when)
        for _ in range(2)
    )
    other = mr_series_datasets(volume, series_description="b", series_number=2, uid_seed="demo")
    assert [ds.SOPInstanceUID for ds in first] == [ds.SOPInstanceUID for ds in again]
    assert len({ds.SOPInstanceUID for ds in first + other}) == 2 * SMALL[0]
    assert first[0].StudyInstanceUID == other[0].StudyInstanceUID
    assert first[0].SeriesInstanceUID != other[0].SeriesInstanceUID
    assert first[0].FrameOfReferenceUID == other[0].FrameOfReferenceUID
    assert (first[0].StudyDate, first[0].StudyTime) == ("20240501", "093000")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"volume": np.zeros((4, 4))}, "volume"),
        ({"orientation": "oblique"}, "orientation"),
        ({"phase_encoding": "SLICE"}, "phase_encoding"),
        ({"spacing_mm": (1.0, 0.0, 1.0)}, "spacing_mm"),
        ({"rescale": (1.0, 10.0)}, "rescale"),
    ],
)
def test_invalid_arguments_are_refused_by_name(arguments: dict[str, object], named: str) -> None:
    call = {"volume": np.ones(SMALL), "series_description": "bad", **arguments}
    with pytest.raises(ValueError, match=f'Argument "{named}"'):
        mr_series_datasets(**call)  # type: ignore[arg-type]


def test_phantom_is_a_function_of_its_seed() -> None:
    assert np.array_equal(phantom_volume(SMALL, seed=7), phantom_volume(SMALL, seed=7))
    assert not np.array_equal(phantom_volume(SMALL, seed=7), phantom_volume(SMALL, seed=8))


def test_phantom_has_air_and_distinct_tissue_classes() -> None:
    volume = phantom_volume((32, 96, 96))
    assert volume.dtype == np.float32
    assert volume.min() == 0.0
    assert (volume == 0).mean() > 0.2, "expected air around the head"
    centre = volume[16, 20:76, 20:76]
    histogram, _ = np.histogram(centre[centre > 0.3], bins=20)
    peaks = np.flatnonzero((histogram[1:-1] > histogram[:-2]) & (histogram[1:-1] > histogram[2:]))
    assert len(peaks) >= 2, "expected grey- and white-matter-like intensity modes"


def test_rician_noise_in_air_has_the_rayleigh_spread() -> None:
    anatomy = phantom_volume((32, 96, 96))
    sigma = 0.05
    noisy = add_rician_noise(anatomy, sigma, seed=4)
    background = noisy[anatomy == 0]
    assert background.size > 50_000
    assert background.std() == pytest.approx(sigma * math.sqrt((4 - math.pi) / 2), rel=0.05)
    assert background.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.05)
    assert np.array_equal(noisy, add_rician_noise(anatomy, sigma, seed=4))


def test_blur_spreads_an_impulse_to_the_requested_fwhm_in_plane_only() -> None:
    impulse = np.zeros((5, 64, 64), dtype=np.float32)
    impulse[2, 32, 32] = 1.0
    blurred = blur(impulse, fwhm_px=4.0)
    assert blurred.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.abs(blurred[[0, 1, 3, 4]]).max() < 1e-6, "blur leaked across slices"
    peak = blurred[2, 32, 32]
    assert blurred[2, 34, 32] / peak == pytest.approx(0.5, abs=0.01)  # FWHM/2 = 2 px off the peak
    assert blurred[2, 32, 30] / peak == pytest.approx(0.5, abs=0.01)
