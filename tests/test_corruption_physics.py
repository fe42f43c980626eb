"""Each corruption against a known answer from MR physics: noise statistics, where ghosts, spikes
and folds land, what k-space a sampling pattern or a motion event touched."""

from __future__ import annotations

import numpy as np
import pytest

from qcgate.models.corruption import corrupt
from qcgate.models.corruption.hardware import bias_field, nyquist_ghost
from qcgate.models.corruption.kspace import frequencies, to_image, to_kspace
from qcgate.models.corruption.motion import motion_rotation, motion_translation
from qcgate.models.corruption.sampling import gibbs, undersampling_1d, undersampling_2d
from qcgate.synthetic.volumes import phantom_volume


def block(shape: tuple[int, int], rows: slice, columns: slice) -> np.ndarray:
    """A bright rectangle in air: where its copies land is easy to tell."""
    image = np.zeros(shape, dtype=np.float64)
    image[rows, columns] = 1.0
    return image


def head_stack(shape: tuple[int, int] = (96, 80)) -> np.ndarray:
    """One phantom slice as the complex working stack (S, PE, RO)."""
    return phantom_volume((9, *shape))[4][None].astype(np.complex128)


def test_noise_is_rayleigh_in_air_with_the_recorded_sigma() -> None:
    image = block((256, 256), slice(96, 160), slice(96, 160))
    noisy, record = corrupt(image, "noise", 0.5, np.random.default_rng(0))
    sigma = record.parameters["sigma"]
    assert sigma == pytest.approx(0.5 * 1.0 / 3.0)  # severity * signal level / 3
    air = noisy[image == 0].astype(np.float64)
    # Rayleigh: mean sigma sqrt(pi/2), std/mean sqrt((4 - pi)/pi) = 0.523, whatever sigma is.
    assert air.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
    assert air.std() / air.mean() == pytest.approx(np.sqrt((4 - np.pi) / np.pi), rel=0.03)
    tissue = noisy[image == 1].astype(np.float64)  # Rician at SNR 6: mean sqrt(A^2 + sigma^2) nearly
    assert tissue.mean() == pytest.approx(np.sqrt(1.0 + sigma**2), rel=0.02)


@pytest.mark.parametrize(("axis", "rows", "columns"), [(-2, 128, 96), (-1, 96, 128)])
def test_nyquist_ghost_is_the_object_shifted_by_half_the_fov_along_pe(
    axis: int, rows: int, columns: int
) -> None:
    """Known answer: the ghost/object amplitude ratio is |tan(phi / 2)| in every read-out column."""
    image = block((rows, columns), slice(10, 30), slice(20, 60))
    if axis == -1:
        image = np.ascontiguousarray(block((columns, rows), slice(10, 30), slice(20, 60)).T)
    ghosted, record = corrupt(image, "nyquist_ghost", 0.8, np.random.default_rng(1), phase_encode_axis=axis)
    pe_first = np.moveaxis(ghosted, axis, 0)  # (PE, RO)
    n_pe, n_ro = pe_first.shape
    read_out = frequencies(n_ro) / n_ro
    phase = record.parameters["constant_phase_rad"] + record.parameters["linear_phase_rad"] * read_out
    expected_ratio = np.abs(np.tan(phase / 2))[20:60]
    object_part = pe_first[10:30, 20:60]
    ghost_part = pe_first[10 + n_pe // 2 : 30 + n_pe // 2, 20:60]
    np.testing.assert_allclose(ghost_part / object_part, np.broadcast_to(expected_ratio, (20, 40)), rtol=1e-4)
    assert record.parameters["ghost_shift_px"] == n_pe / 2
    elsewhere = np.ones_like(pe_first, dtype=bool)
    elsewhere[10:30, 20:60] = False
    elsewhere[10 + n_pe // 2 : 30 + n_pe // 2, 20:60] = False
    assert np.abs(pe_first[elsewhere]).max() < 1e-4  # no ghost along read-out, nothing else moved


def test_spike_puts_energy_at_the_recorded_k_space_positions() -> None:
    """On a uniform image |1 + w| ~ 1 + Re(w): the herringbone's spectrum peaks where the spikes are."""
    image = np.ones((128, 96))
    spiked, record = corrupt(image, "spike", 0.2, np.random.default_rng(6))
    spectrum = np.abs(to_kspace(spiked.astype(np.float64) - 1.0))
    positions = [
        (record.parameters[f"spike_{index}_pe"], record.parameters[f"spike_{index}_ro"])
        for index in range(1, int(record.parameters["count"]) + 1)
    ]
    at_spikes = sum(spectrum[64 + p, 48 + r] ** 2 + spectrum[64 - p, 48 - r] ** 2 for p, r in positions)
    assert at_spikes / np.sum(spectrum**2) > 0.95
    stripe = record.parameters["stripe_amplitude"]  # Re(a e^{i k.x}) peaks at a/2 on each side
    assert spectrum[64 + positions[0][0], 48 + positions[0][1]] == pytest.approx(
        stripe / 2 * np.sqrt(image.size), rel=0.05
    )


@pytest.mark.parametrize("axis", [-2, -1])
def test_wrap_around_folds_along_phase_encoding_only(axis: int) -> None:
    """Every object row lands once in the field of view: sums along PE are kept, nothing moves along RO."""
    image = phantom_volume((9, 96, 88))[4].astype(np.float64)
    folded, record = corrupt(image, "wrap_around", 0.7, np.random.default_rng(0), phase_encode_axis=axis)
    pe_axis = axis % 2
    np.testing.assert_allclose(folded.sum(axis=pe_axis), image.sum(axis=pe_axis), rtol=1e-4, atol=1e-4)
    first, rows = record.parameters["fov_first_row"], record.parameters["fov_rows"]
    outside = np.ones(image.shape[pe_axis], dtype=bool)
    outside[first : first + rows] = False
    assert np.all(np.take(folded, np.flatnonzero(outside), axis=pe_axis) == 0)
    assert not np.allclose(folded, image * ~np.expand_dims(outside, 1 - pe_axis))  # the ends did fold in


def test_blur_is_a_gaussian_of_the_recorded_width() -> None:
    point = block((129, 129), slice(64, 65), slice(64, 65))
    blurred, record = corrupt(point, "blur", 0.8, np.random.default_rng(0))
    profile = blurred.sum(axis=1).astype(np.float64)
    offsets = np.arange(129) - 64
    variance = np.sum(profile * offsets**2) / profile.sum()
    assert np.sqrt(variance) == pytest.approx(record.parameters["sigma_px"], rel=0.01)


def test_undersampling_1d_zeroes_whole_outer_lines_only() -> None:
    stack = head_stack()
    for seed in range(4):  # both patterns, random and regular
        out, record = undersampling_1d(stack, 0.8, np.random.default_rng(seed))
        kspace = to_kspace(out)[0]
        empty = np.all(np.abs(kspace) < 1e-9, axis=1)  # (PE,)
        assert empty.sum() == record["lines_dropped"]
        line = np.abs(frequencies(96)) / 48
        assert np.all(line[empty] >= record["centre_fraction"])
        np.testing.assert_allclose(kspace[~empty], to_kspace(stack)[0][~empty])


def test_undersampling_2d_keeps_the_centre_and_drops_more_at_the_edge() -> None:
    stack = head_stack((128, 128))
    out, record = undersampling_2d(stack, 1.0, np.random.default_rng(0))
    dropped = np.abs(to_kspace(out)[0]) < 1e-12
    centre = int(record["centre_fraction"] * 64)
    assert not dropped[64 - centre + 1 : 64 + centre, 64 - centre + 1 : 64 + centre].any()
    radius = np.hypot(*np.meshgrid(frequencies(128), frequencies(128), indexing="ij"))
    assert dropped[radius > 56].mean() > dropped[(radius > 30) & (radius < 40)].mean() + 0.2
    assert dropped.mean() == pytest.approx(record["fraction_dropped"])


def test_gibbs_truncates_k_space_with_a_sharp_cutoff() -> None:
    stack = head_stack()
    out, record = gibbs(stack, 1.0, np.random.default_rng(0))
    kspace = np.abs(to_kspace(out)[0])
    lines = np.abs(frequencies(96)) > record["kept_fraction"] * 48
    assert kspace[lines].max() < 1e-9
    assert kspace[~lines].max() > 1.0


@pytest.mark.parametrize("artifact", [motion_translation, motion_rotation])
def test_motion_changes_only_outer_lines_on_one_side(artifact: object) -> None:
    stack = head_stack()
    for seed in range(6):
        out, record = artifact(stack, 0.9, np.random.default_rng(seed))  # type: ignore[operator]
        changed = ~np.all(np.isclose(to_kspace(out)[0], to_kspace(stack)[0], atol=1e-9), axis=1)
        k = frequencies(96)[changed]
        assert changed.sum() <= record["lines_moved"]
        assert np.all(np.abs(k) >= 0.05 * 96), "the central 10% of k-space never moves"
        assert np.all(np.sign(k) == np.sign(record["event_line"]))
        assert changed.sum() > 10


def test_translation_is_the_phase_ramp_of_the_recorded_shift() -> None:
    stack = head_stack()
    out, record = motion_translation(stack, 1.0, np.random.default_rng(2))
    ratio = to_kspace(out)[0] / to_kspace(stack)[0]
    line = int(record["event_line"]) + 48
    k_ro = frequencies(80) / 80
    expected = np.exp(
        -2j * np.pi * (record["event_line"] / 96 * record["shift_pe_px"] + k_ro * record["shift_ro_px"])
    )
    valid = np.abs(to_kspace(stack)[0][line]) > 1e-6
    np.testing.assert_allclose(ratio[line][valid], expected[valid], atol=1e-6)


def test_bias_field_is_smooth_and_spans_the_recorded_gains() -> None:
    stack = np.ones((1, 96, 80), dtype=np.complex128)
    out, record = bias_field(stack, 1.0, np.random.default_rng(0))
    gain = out.real[0]
    assert gain.min() == pytest.approx(record["min_gain"])
    assert gain.max() == pytest.approx(record["max_gain"])
    assert record["max_gain"] / record["min_gain"] > 1.5
    assert np.abs(np.diff(np.log(gain), axis=0)).max() < 0.1  # no edges: under 10% from pixel to pixel
    assert np.abs(np.diff(np.log(gain), axis=1)).max() < 0.1


def test_ghost_phase_stays_below_pi_so_the_object_outshines_its_ghost() -> None:
    stack = head_stack()
    for seed in range(20):
        _, record = nyquist_ghost(stack, 1.0, np.random.default_rng(seed))
        worst = abs(record["constant_phase_rad"]) + abs(record["linear_phase_rad"]) / 2
        assert worst <= 0.4 * np.pi + 1e-12


def test_kspace_transforms_are_unitary_and_centred() -> None:
    image = np.random.default_rng(0).standard_normal((3, 33, 20))
    kspace = to_kspace(image)
    assert np.sum(np.abs(kspace) ** 2) == pytest.approx(np.sum(image**2))
    np.testing.assert_allclose(to_image(kspace), image, atol=1e-12)
    assert to_kspace(np.ones((1, 33, 20)))[0, 33 // 2, 20 // 2] == pytest.approx(np.sqrt(33 * 20))
