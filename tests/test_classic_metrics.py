"""Classic metrics on phantoms with known noise, ghosts and blur, on real MR, and on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from phantominator import shepp_logan
from pydicom.data import get_testdata_file
from scipy import ndimage

from qcgate.core.errors import NotAssessable
from qcgate.imaging.volume import Stack, build_stacks
from qcgate.metrics.base import MetricResult
from qcgate.metrics.classic import ClassicMetrics, cjv, cnr, efc, fber, gsr, snr, snrd
from qcgate.metrics.segmentation import otsu_thresholds, segment

RAYLEIGH_STD_FACTOR = math.sqrt((4 - math.pi) / 2)
WM, GM, CSF = 800.0, 500.0, 150.0
DIRECTIONS = {"snr": True, "snrd": True, "cnr": True, "cjv": False, "efc": False, "fber": True, "gsr": False}


def head_phantom(slices: int = 8, size: int = 128) -> np.ndarray:
    """Concentric (S, R, C) 'head': a CSF ventricle in a WM core, a GM ring, a CSF ring, a scalp.

    The scalp matches GM so that the two brightest intensity classes are exactly WM and GM, which
    makes CNR and CJV computable by hand. The dark rings are enclosed, as in a real head, and the
    ventricle puts CSF right next to WM: a step that smoothing turns into GM-like partial volume.
    """
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    radius = np.hypot(y, x)
    rings = [radius < 8, radius < 20, radius < 30, radius < 34, radius < 40]
    plane = np.select(rings, [CSF, WM, GM, CSF, GM], 0.0)
    return np.repeat(plane[None], slices, axis=0)


def shepp_logan_phantom(slices: int = 16, size: int = 128) -> np.ndarray:
    volume = shepp_logan((size, size, slices), MR=False, zlims=(-0.5, 0.5))  # (R, C, S)
    return np.ascontiguousarray(np.moveaxis(volume, -1, 0)) * 1000.0  # (S, R, C)


def rician(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Magnitude of ``image`` plus complex Gaussian noise of ``sigma`` per channel."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, image.shape) + 1j * rng.normal(0.0, sigma, image.shape)
    return np.abs(image + noise).astype(np.float32)


def with_ghost(image: np.ndarray, fraction: float, axis: int) -> np.ndarray:
    """Add an N/2 (Nyquist) ghost: a scaled copy shifted by half the matrix along ``axis``."""
    return image + fraction * np.roll(image, image.shape[axis] // 2, axis=axis)


def evaluate(voxels: np.ndarray, phase_encode_axis: int | None = 1) -> dict[str, MetricResult]:
    stack = Stack(
        voxels=voxels.astype(np.float32),
        spacing_mm=(1.0, 1.0, 1.0),
        phase_encode_axis=phase_encode_axis,
        sop_instance_uids=tuple(str(index) for index in range(voxels.shape[0])),
        label="axial",
    )
    return {result.name: result for result in ClassicMetrics().evaluate(stack)}


# Known answers on noisy phantoms


@pytest.mark.parametrize("sigma", [10.0, 20.0, 40.0])
def test_snrd_recovers_mean_signal_over_noise_sigma(sigma: float) -> None:
    phantom = head_phantom()
    true_snr = phantom[phantom > 0].mean() / sigma

    assert evaluate(rician(phantom, sigma))["snrd"].value == pytest.approx(true_snr, rel=0.1)


@pytest.mark.parametrize("sigma", [10.0, 20.0, 40.0])
def test_snr_is_taken_on_the_brightest_tissue(sigma: float) -> None:
    assert evaluate(rician(head_phantom(), sigma))["snr"].value == pytest.approx(WM / sigma, rel=0.1)


@pytest.mark.parametrize("sigma", [10.0, 20.0, 40.0])
def test_cnr_and_cjv_of_the_two_brightest_tissues(sigma: float) -> None:
    results = evaluate(rician(head_phantom(), sigma))

    background_std = RAYLEIGH_STD_FACTOR * sigma
    expected_cnr = (WM - GM) / math.sqrt(background_std**2 + 2 * sigma**2)
    assert results["cnr"].value == pytest.approx(expected_cnr, rel=0.1)
    assert results["cjv"].value == pytest.approx(2 * sigma / (WM - GM), rel=0.1)


# Directions: each documented direction is what degradation actually does


def test_every_metric_is_reported_with_its_documented_direction() -> None:
    results = evaluate(rician(head_phantom(), 10.0))

    assert {name: result.higher_is_better for name, result in results.items()} == DIRECTIONS
    assert all(result.quality is None for result in results.values())
    assert ClassicMetrics.name == "classic"
    assert ClassicMetrics.version == "1"


@pytest.mark.parametrize("name", ["snr", "snrd", "cnr", "cjv", "efc", "fber"])
def test_more_noise_scores_worse(name: str) -> None:
    values = [evaluate(rician(head_phantom(), sigma))[name].value for sigma in (5.0, 10.0, 20.0, 40.0)]

    worsening = np.diff(values) < 0 if DIRECTIONS[name] else np.diff(values) > 0
    assert worsening.all(), values


def test_nyquist_ghost_raises_gsr_along_the_phase_axis() -> None:
    phantom = shepp_logan_phantom()
    clean = rician(phantom, 10.0)
    ghosted = rician(with_ghost(phantom, 0.1, axis=1), 10.0)

    clean_gsr = evaluate(clean, phase_encode_axis=1)["gsr"].value
    ghost_gsr = evaluate(ghosted, phase_encode_axis=1)["gsr"].value
    wrong_axis_gsr = evaluate(ghosted, phase_encode_axis=2)["gsr"].value
    unknown_axis_gsr = evaluate(ghosted, phase_encode_axis=None)["gsr"].value

    assert abs(clean_gsr) < 0.01
    assert ghost_gsr > clean_gsr + 0.03
    assert wrong_axis_gsr < ghost_gsr
    assert unknown_axis_gsr == ghost_gsr  # the worse axis is reported when the header is silent


@pytest.mark.parametrize(
    "degrade",
    [
        lambda image: with_ghost(image, 0.1, axis=1),
        lambda image: ndimage.gaussian_filter(image, (0.0, 2.0, 2.0)),
    ],
    ids=["ghosted", "blurred"],
)
def test_ghosting_and_blurring_raise_efc(degrade: object) -> None:
    phantom = shepp_logan_phantom()
    assert callable(degrade)

    clean = evaluate(rician(phantom, 10.0))["efc"].value
    degraded = evaluate(rician(degrade(phantom), 10.0))["efc"].value

    assert degraded > clean + 0.01


# Real images


@pytest.mark.parametrize(
    "name", ["MR_small.dcm", "emri_small.dcm", "MR2_J2KR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"]
)
def test_real_mr_images_get_every_metric(name: str) -> None:
    (stack,) = build_stacks([pydicom.dcmread(get_testdata_file(name))])

    results = ClassicMetrics().evaluate(stack)

    assert [result.name for result in results] == list(DIRECTIONS)
    assert all(math.isfinite(result.value) for result in results)


@pytest.mark.parametrize("name", ["snr", "cnr", "cjv", "efc", "fber"])
def test_added_noise_scores_worse_on_a_real_enhanced_mr(name: str) -> None:
    """snrd is left out: emri_small is a 64x64 crop of a head with no air in it, so its
    "background" is dim anatomy whose spread hides added noise; the phantoms above cover snrd."""
    (stack,) = build_stacks([pydicom.dcmread(get_testdata_file("emri_small.dcm"))])

    values = [evaluate(rician(stack.voxels, sigma))[name].value for sigma in (20.0, 40.0, 80.0)]

    worsening = np.diff(values) < 0 if DIRECTIONS[name] else np.diff(values) > 0
    assert worsening.all(), values


# Per-slice values


def test_per_slice_values_are_nan_where_a_slice_has_no_foreground() -> None:
    phantom = head_phantom(slices=6)
    phantom[[0, -1]] = 0.0  # the object spans slices 1 to 4 only

    results = evaluate(rician(phantom, 10.0))

    for name in ("snr", "snrd"):
        per_slice = results[name].per_slice
        assert per_slice is not None
        assert len(per_slice) == 6
        assert math.isnan(per_slice[0])
        assert math.isnan(per_slice[-1])
        assert per_slice[1:-1] == pytest.approx([results[name].value] * 4, rel=0.1)
    efc_per_slice = results["efc"].per_slice
    assert efc_per_slice is not None
    assert all(math.isfinite(value) for value in efc_per_slice)
    assert results["cnr"].per_slice is None


# Formulas on hand-computed examples


def test_formulas_on_hand_computed_values() -> None:
    image = np.array([9.0, 11.0, 4.0, 6.0, 0.0, 2.0, 3.0])
    first, second, air = (np.zeros(7, dtype=bool) for _ in range(3))
    first[[0, 1]], second[[2, 3]], air[[4, 5]] = True, True, True

    assert snr(image, first) == pytest.approx(10.0 / math.sqrt(2.0))
    assert snrd(image, first, air) == pytest.approx(10.0 * RAYLEIGH_STD_FACTOR / math.sqrt(2.0))
    assert cnr(image, first, second, air) == pytest.approx(5.0 / math.sqrt(6.0))
    assert cjv(image, first, second) == pytest.approx(2.0 * math.sqrt(2.0) / 5.0)
    # median of [16, 36, 81, 121] over median of [0, 4, 9]
    assert fber(image, first | second, air | (image == 3.0)) == pytest.approx((36 + 81) / 2 / 4)


def test_efc_is_one_for_a_uniform_image_and_zero_for_a_single_bright_voxel() -> None:
    point = np.zeros((4, 16, 16))
    point[2, 8, 8] = 100.0

    assert efc(np.full((4, 16, 16), 7.0)) == pytest.approx(1.0)
    assert efc(point) == pytest.approx(0.0)


def test_gsr_on_a_drawn_ghost() -> None:
    image, foreground = np.zeros((1, 8, 8)), np.zeros((1, 8, 8), dtype=bool)
    foreground[0, 1:3, 2:6] = True
    image[foreground] = 100.0
    image[0, 5:7, 2:6] = 10.0  # the ghost, half the matrix away along the rows

    assert gsr(image, foreground, 1) == pytest.approx(10.0 / 100.0)
    assert gsr(image, foreground, 2) == pytest.approx(-(80.0 / 48.0) / 100.0)
    assert gsr(image, foreground, None) == pytest.approx(0.1)


def test_gsr_with_unknown_axis_skips_an_axis_without_ghost_region() -> None:
    image, band = np.zeros((1, 8, 8)), np.zeros((1, 8, 8), dtype=bool)
    band[0, 1:3, :] = True  # spans every column: shifting along the columns leaves no ghost region
    image[band] = 100.0
    image[0, 5:7, :] = 10.0

    assert math.isnan(gsr(image, band, 2))
    assert gsr(image, band, None) == pytest.approx(gsr(image, band, 1))
    assert gsr(image, band, 1) == pytest.approx(0.1)


def test_undefined_formulas_give_nan_not_infinity() -> None:
    image = np.array([5.0, 5.0, 1.0, 1.0])
    flat, air = np.array([True, True, False, False]), np.array([False, False, True, True])

    assert math.isnan(snrd(image, flat, air))  # noise-free air
    assert math.isnan(cjv(image, flat, flat))  # no contrast
    assert math.isnan(snr(image, np.zeros(4, dtype=bool)))  # empty region
    assert math.isnan(efc(np.zeros(4)))


# Not assessable


def test_a_constant_image_is_not_assessable() -> None:
    with pytest.raises(NotAssessable, match="one intensity"):
        evaluate(np.full((4, 32, 32), 100.0))


def test_zero_filled_air_is_not_assessable() -> None:
    with pytest.raises(NotAssessable, match="zero-filled"):
        evaluate(head_phantom())  # as some reconstructions write it


def test_a_noise_free_object_is_not_assessable() -> None:
    image = head_phantom()
    air = image == 0
    image[air] = rician(np.zeros_like(image), 10.0)[air]  # noise in the air only: a synthetic image

    with pytest.raises(NotAssessable, match="^snr undefined") as raised:
        evaluate(image)
    assert "zero denominator" in str(raised.value)


def test_zero_padding_is_left_out_of_the_background() -> None:
    noisy = rician(head_phantom(), 20.0)
    padded = noisy.copy()
    padded[:, :, :16] = 0.0  # a reformatted (MPR) slab leaves the edge of the frame empty

    assert evaluate(padded)["snrd"].value == pytest.approx(evaluate(noisy)["snrd"].value, rel=0.05)


def test_an_object_filling_the_field_of_view_is_not_assessable() -> None:
    image = np.full((2, 64, 64), 1000.0)
    image[:, 30:34, 30:34] = 10.0  # a dark hole; everything else is object

    with pytest.raises(NotAssessable, match="fills the field of view"):
        evaluate(rician(image, 10.0))


# Segmentation


def test_segmentation_fills_enclosed_dark_tissue_and_keeps_a_margin() -> None:
    phantom = head_phantom()
    masks = segment(rician(phantom, 10.0))

    assert masks.foreground[phantom == CSF].all()  # the dark ring is enclosed, so it is foreground
    outline = np.count_nonzero(masks.foreground ^ ndimage.binary_fill_holes(phantom > 0))
    assert outline < 0.01 * np.count_nonzero(phantom)  # differences only where smoothing blurs the edge
    assert not (masks.background & ndimage.binary_dilation(masks.foreground, iterations=4)).any()
    assert masks.background.sum() > 0.5 * (~masks.foreground).sum()


def test_segmentation_keeps_separate_compartments_of_a_phantom() -> None:
    y, x = np.mgrid[:96, :96]
    tubes = (np.hypot(y - 48, x - 25) < 15) * 600.0 + (np.hypot(y - 48, x - 72) < 10) * 400.0

    masks = segment(rician(np.repeat(tubes[None], 4, axis=0), 10.0))

    assert masks.foreground[:, 48, 25].all()
    assert masks.foreground[:, 48, 72].all()


def test_three_class_otsu_separates_three_modes() -> None:
    rng = np.random.default_rng(1)
    dark, middle, bright = (rng.normal(mean, 5.0, 5000) for mean in (100.0, 300.0, 700.0))

    low, high = otsu_thresholds(np.concatenate([dark, middle, bright]), classes=3)

    assert dark.max() <= low <= middle.min()
    assert middle.max() <= high <= bright.min()
