"""The corruption simulator's contract: shapes, dtypes, seeds, records, arguments, combinations,
and that every kind grows monotonically with its severity on several synthetic images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from phantominator import shepp_logan

import qcgate.models.corruption as corruption
from qcgate.models.corruption import CORRUPTION_TYPES, AppliedCorruption, corrupt, corrupt_random, nrmse, ssim
from qcgate.synthetic.volumes import phantom_volume

SEVERITIES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
# Kinds whose output does not depend on the slice's neighbours nor on the stack's signal level,
# so a stack corrupts exactly like its slices one by one under the same seed (the motion event,
# the sampling mask and the ghost's phase error are shared by all slices).
SLICE_BY_SLICE = (
    "blur",
    "undersampling_1d",
    "undersampling_2d",
    "motion_translation",
    "motion_rotation",
    "nyquist_ghost",
    "gibbs",
)
# Kinds that are linear in the complex image, so a global phase cannot change the magnitude.
LINEAR = (*SLICE_BY_SLICE, "bias_field", "wrap_around")
# The signal's path, as docs/corruptions.md states it: object and coil, encoding, receiver, sampling.
ACQUISITION_ORDER = (
    "bias_field",
    "motion_translation",
    "motion_rotation",
    "wrap_around",
    "noise",
    "nyquist_ghost",
    "spike",
    "undersampling_1d",
    "undersampling_2d",
    "gibbs",
    "blur",
)
RECORD_KEYS = {
    "noise": {"sigma", "signal_level", "snr"},
    "blur": {"sigma_px", "fwhm_px"},
    "undersampling_1d": {"pattern", "centre_fraction", "lines_dropped", "acceleration"},
    "undersampling_2d": {"centre_fraction", "fraction_dropped", "acceleration"},
    "motion_translation": {
        "event_line",
        "lines_moved",
        "moved_side",
        "direction",
        "shift_pe_px",
        "shift_ro_px",
    },
    "motion_rotation": {"event_line", "lines_moved", "moved_side", "angle_deg"},
    "nyquist_ghost": {"constant_phase_rad", "linear_phase_rad", "ghost_shift_px"},
    "spike": {"count", "stripe_amplitude", "spike_1_pe", "spike_1_ro"},
    "gibbs": {"axes", "kept_fraction"},
    "bias_field": {"log_amplitude", "min_gain", "max_gain"},
    "wrap_around": {"fov_fraction", "fov_rows", "fov_first_row", "object_rows"},
}


def head_slice(shape: tuple[int, int] = (97, 80)) -> np.ndarray:
    """The synthetic head phantom's middle slice: odd, non-square, with air around the head."""
    return phantom_volume((9, *shape))[4]


TEST_IMAGES = {
    "head phantom 97x80": head_slice(),
    "Shepp-Logan 96x96": shepp_logan(96).astype(np.float32),
    "head phantom 64x121": head_slice((64, 121)),
}


def test_corruption_types_are_the_published_list() -> None:
    assert CORRUPTION_TYPES == (
        "noise",
        "blur",
        "undersampling_1d",
        "undersampling_2d",
        "motion_translation",
        "motion_rotation",
        "nyquist_ghost",
        "spike",
        "gibbs",
        "bias_field",
        "wrap_around",
    )


@pytest.mark.slow  # a fresh interpreter imports the package: about 2 s
def test_the_package_runs_without_torch() -> None:
    """The benchmark and service-side evaluation import it where torch is not installed."""
    script = (
        "import sys, qcgate.models.corruption, qcgate.bench.corruption_gallery; print('torch' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


def test_public_names_all_resolve() -> None:
    assert sorted(corruption.__all__) == sorted(set(corruption.__all__))
    for name in corruption.__all__:
        assert getattr(corruption, name) is not None


@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
@pytest.mark.parametrize("image_name", sorted(TEST_IMAGES))
def test_every_kind_is_monotone_in_severity(kind: str, image_name: str) -> None:
    """Error energy never falls as severity rises; SSIM never rises by more than 0.03."""
    image = TEST_IMAGES[image_name]
    for seed in range(3):
        for axis in (-2, -1):
            copies = [corrupt(image, kind, s, np.random.default_rng(seed), axis)[0] for s in SEVERITIES]
            errors = [nrmse(image, copy) for copy in copies]
            similarities = [ssim(image, copy) for copy in copies]
            assert np.all(np.diff(errors) >= -1e-6), (seed, axis, np.round(errors, 4))
            assert np.all(np.diff(similarities) <= 0.03), (seed, axis, np.round(similarities, 3))
            assert errors[1] > 0.0, "the smallest severity must already change the image"


@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
def test_severity_zero_returns_the_magnitude_and_draws_nothing(kind: str) -> None:
    image = head_slice().astype(np.complex64) * np.exp(0.3j)
    rng = np.random.default_rng(5)
    out, record = corrupt(image, kind, 0.0, rng)
    np.testing.assert_array_equal(out, np.abs(image).astype(np.float32))
    assert record == AppliedCorruption(kind, 0.0, {})
    assert rng.random() == np.random.default_rng(5).random()


@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
def test_same_seed_same_result_and_record(kind: str) -> None:
    image = head_slice()
    first = corrupt(image, kind, 0.6, np.random.default_rng(11))
    second = corrupt(image, kind, 0.6, np.random.default_rng(11))
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
def test_record_names_what_was_applied(kind: str) -> None:
    _, record = corrupt(head_slice(), kind, 0.7, np.random.default_rng(2))
    assert record.kind == kind
    assert record.severity == 0.7
    assert RECORD_KEYS[kind] <= set(record.parameters)
    assert all(isinstance(value, float | int | str) for value in record.parameters.values())


@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
@pytest.mark.parametrize(
    "image",
    [
        head_slice((33, 47)),
        phantom_volume((8, 40, 33))[2:6],
        head_slice((48, 40)).astype(np.complex128) * np.exp(1j * np.linspace(0, 1, 40)),
        (head_slice((48, 40)) * 1000).astype(np.int16),
    ],
    ids=["2D odd", "3D", "complex", "int16"],
)
def test_output_is_a_finite_float32_magnitude_of_the_input_shape(kind: str, image: np.ndarray) -> None:
    out, _ = corrupt(image, kind, 0.8, np.random.default_rng(0))
    assert out.shape == image.shape
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert (out >= 0).all()


@pytest.mark.parametrize("kind", SLICE_BY_SLICE)
def test_a_stack_is_corrupted_slice_by_slice_with_a_shared_event(kind: str) -> None:
    volume = phantom_volume((8, 48, 40))[3:6]
    stacked, record = corrupt(volume, kind, 0.7, np.random.default_rng(4))
    for index, image in enumerate(volume):
        alone, alone_record = corrupt(image, kind, 0.7, np.random.default_rng(4))
        np.testing.assert_allclose(stacked[index], alone, atol=1e-5)
        assert alone_record == record


@pytest.mark.parametrize("kind", LINEAR)
def test_a_global_phase_does_not_change_a_linear_corruption(kind: str) -> None:
    image = head_slice()
    real, _ = corrupt(image, kind, 0.7, np.random.default_rng(8))
    rotated, _ = corrupt(image * np.exp(2.1j), kind, 0.7, np.random.default_rng(8))
    np.testing.assert_allclose(rotated, real, atol=1e-5)


@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
def test_phase_encode_axis_picks_the_axis_the_physics_runs_along(kind: str) -> None:
    image = head_slice()
    along_columns, _ = corrupt(image, kind, 0.7, np.random.default_rng(3), phase_encode_axis=-1)
    transposed, _ = corrupt(np.ascontiguousarray(image.T), kind, 0.7, np.random.default_rng(3))
    np.testing.assert_allclose(along_columns, transposed.T, atol=1e-5)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"kind": "zipper"}, "kind"),
        ({"severity": -0.1}, "severity"),
        ({"severity": 1.5}, "severity"),
        ({"severity": float("nan")}, "severity"),
        ({"severity": True}, "severity"),
        ({"image": np.zeros(64)}, "image"),
        ({"image": np.zeros((2, 2, 32, 32))}, "image"),
        ({"image": np.zeros((8, 64))}, "image"),
        ({"image": np.full((32, 32), np.nan)}, "image"),
        ({"image": np.full((32, 32), "a")}, "image"),
        ({"phase_encode_axis": 0, "image": np.zeros((3, 32, 32))}, "phase_encode_axis"),
        ({"phase_encode_axis": 2}, "phase_encode_axis"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, object], named: str) -> None:
    call: dict[str, object] = {
        "image": head_slice(),
        "kind": "noise",
        "severity": 0.5,
        "phase_encode_axis": -2,
    }
    call.update(arguments)
    with pytest.raises(ValueError, match=f'Argument "{named}"'):
        corrupt(rng=np.random.default_rng(0), **call)  # type: ignore[arg-type]


def test_random_combinations_cover_zero_to_five_kinds_in_acquisition_order() -> None:
    image = head_slice((48, 40))
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(60):
        out, records = corrupt_random(image, rng)
        counts.add(len(records))
        kinds = [record.kind for record in records]
        assert len(set(kinds)) == len(kinds)
        assert kinds == sorted(kinds, key=ACQUISITION_ORDER.index)
        assert all(0.0 < record.severity <= 1.0 for record in records)
        assert out.shape == image.shape
        assert out.dtype == np.float32
        if not records:
            np.testing.assert_allclose(out, image, atol=1e-6)
    assert counts == {0, 1, 2, 3, 4, 5}


def test_random_combinations_are_seeded_and_respect_the_kinds_offered() -> None:
    image = head_slice((48, 40))
    first = corrupt_random(image, np.random.default_rng(9), max_corruptions=2, kinds=("blur", "spike"))
    second = corrupt_random(image, np.random.default_rng(9), max_corruptions=2, kinds=("blur", "spike"))
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    for seed in range(20):
        _, records = corrupt_random(image, np.random.default_rng(seed), max_corruptions=1, kinds=("gibbs",))
        assert [record.kind for record in records] in ([], ["gibbs"])
    out, records = corrupt_random(image, np.random.default_rng(1), max_corruptions=0)
    assert records == []
    np.testing.assert_allclose(out, image, atol=1e-6)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"kinds": ("noise", "zipper")}, "kinds"),
        ({"kinds": ("noise", "noise")}, "kinds"),
        ({"max_corruptions": -1}, "max_corruptions"),
        ({"max_corruptions": 2.5}, "max_corruptions"),
    ],
)
def test_bad_combination_arguments_are_named(arguments: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=f'Argument "{named}"'):
        corrupt_random(head_slice(), np.random.default_rng(0), **arguments)  # type: ignore[arg-type]
