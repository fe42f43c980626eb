"""Full-reference measures, the quality label and the true SNR, against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qcgate.models.corruption import (
    CORRUPTION_TYPES,
    PERCEPTUAL_NAME,
    composite_from_measures,
    corrupt,
    nrmse,
    perceptual,
    psnr,
    quality_label,
    reference_measures,
    ssim,
    true_snr,
)
from qcgate.synthetic.volumes import phantom_volume


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    """An odd, non-square phantom slice with air around the head, float64."""
    return phantom_volume((9, 97, 80))[4].astype(np.float64)


def test_identical_images_score_perfectly(head: np.ndarray) -> None:
    measures = reference_measures(head, head)
    assert measures == pytest.approx({"ssim": 1.0, "psnr": math.inf, "nrmse": 0.0, "vif": 1.0}, abs=1e-9)
    assert PERCEPTUAL_NAME == "vif"
    assert quality_label(measures) == pytest.approx(100.0)


def test_ssim_is_scikit_images_gaussian_ssim(head: np.ndarray) -> None:
    metrics = pytest.importorskip("skimage.metrics")
    noisy, _ = corrupt(head, "noise", 0.3, np.random.default_rng(0))
    expected = metrics.structural_similarity(
        head,
        noisy.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=head.max(),
    )
    assert ssim(head, noisy) == pytest.approx(expected, abs=1e-10)


def test_psnr_and_nrmse_known_answers(head: np.ndarray) -> None:
    offset = 0.01 * head.max()
    assert psnr(head, head + offset) == pytest.approx(40.0)  # 20 log10(L / (0.01 L))
    assert nrmse(head, 0.9 * head) == pytest.approx(0.1)
    assert nrmse(head, np.zeros_like(head)) == pytest.approx(1.0)


def test_measures_are_invariant_to_scaling_both_images(head: np.ndarray) -> None:
    blurred, _ = corrupt(head, "blur", 0.5, np.random.default_rng(0))
    unscaled = reference_measures(head, blurred)
    scaled = reference_measures(1000 * head, 1000 * blurred.astype(np.float64))
    assert scaled == pytest.approx(unscaled, rel=1e-6)


def test_a_mask_ignores_what_lies_outside_it(head: np.ndarray) -> None:
    mask = np.zeros(head.shape, dtype=bool)
    mask[20:70, 15:65] = True
    changed = head.copy()
    changed[~mask] += 0.5
    far = np.ones(head.shape, dtype=bool)  # beyond the reach of SSIM's 11 x 11 window from the mask
    far[15:75, 10:70] = False
    changed_far = np.where(far, head + 0.5, head)
    assert ssim(head, changed_far, mask) == pytest.approx(1.0)
    assert ssim(head, changed, mask) < 1.0
    assert nrmse(head, changed, mask) == 0.0
    assert psnr(head, changed, mask) == math.inf
    assert nrmse(head, changed) > 0.0


def test_volumes_are_measured_slice_by_slice_in_plane(head: np.ndarray) -> None:
    """Slices sharing the volume's maximum score alone as they do inside it; empty ones are skipped."""
    volume = np.stack([np.zeros_like(head), head, head[::-1], head[:, ::-1]])  # (S, R, C)
    blurred = corrupt(volume, "blur", 0.6, np.random.default_rng(0))[0].astype(np.float64)
    per_slice = [perceptual(volume[i], blurred[i]) for i in (1, 2, 3)]
    assert perceptual(volume, blurred) == pytest.approx(np.mean(per_slice))
    assert ssim(volume[1:], blurred[1:]) == pytest.approx(
        np.mean([ssim(volume[i], blurred[i]) for i in (1, 2, 3)])
    )


@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
def test_quality_label_is_within_0_100_and_falls_with_severity(head: np.ndarray, kind: str) -> None:
    labels = [
        quality_label(reference_measures(head, corrupt(head, kind, s, np.random.default_rng(1))[0]))
        for s in (0.0, 0.25, 0.5, 1.0)
    ]
    assert all(0.0 <= label <= 100.0 for label in labels)
    assert labels[0] == pytest.approx(100.0)
    assert np.all(np.diff(labels) < 0.5), np.round(labels, 1)
    assert labels[-1] < 95.0


def test_composite_clips_each_term_and_weighs_the_error_most() -> None:
    assert composite_from_measures({"ssim": -0.2, "nrmse": 50.0, "vif": 1.3, "psnr": 0.0}) == pytest.approx(
        0.3
    )
    error_only = composite_from_measures({"ssim": 1.0, "nrmse": 0.25, "vif": 1.0})
    assert error_only == pytest.approx(0.6 + 0.4 * math.exp(-1.0))


def test_true_snr_is_the_mean_foreground_over_sigma_and_matches_the_air() -> None:
    clean = np.zeros((192, 192))
    clean[48:144, 48:144] = 2.0
    foreground = clean > 0
    noisy, record = corrupt(clean, "noise", 0.3, np.random.default_rng(0))
    snr = true_snr(clean, float(record.parameters["sigma"]), foreground)
    assert snr == pytest.approx(record.parameters["snr"])
    assert snr == pytest.approx(2.0 / float(record.parameters["sigma"]))
    # MRIQC's snr_d estimates the same from the air: sigma = std(air) / sqrt((4 - pi) / 2).
    air_sigma = noisy[~foreground].std() / math.sqrt((4 - math.pi) / 2)
    assert clean[foreground].mean() / air_sigma == pytest.approx(snr, rel=0.03)
    assert true_snr(clean, 0.0, foreground) == math.inf


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda image: ssim(image, image[:, :-1]), '"reference" and "image"'),
        (lambda image: nrmse(image, image, np.ones(image.shape)), '"mask"'),
        (lambda image: psnr(image, image, np.zeros(image.shape, dtype=bool)), '"mask"'),
        (lambda image: ssim(np.zeros_like(image), image), '"reference"'),
        (lambda image: nrmse(image, np.full_like(image, np.nan)), '"reference" and "image"'),
        (lambda image: perceptual(image[:30, :30], image[:30, :30]), '"reference"'),
        (lambda image: true_snr(image, -1.0, image > 0), '"noise_sigma"'),
        (lambda image: true_snr(image, 1.0, image < -1), '"foreground"'),
    ],
)
def test_bad_arguments_are_named(head: np.ndarray, call: object, named: str) -> None:
    with pytest.raises(ValueError, match=f"Argument[s]? {named}"):
        call(head)  # type: ignore[operator]
