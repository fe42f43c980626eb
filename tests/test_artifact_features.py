"""Artifact features on phantoms with known answers (noise sigma, blur, invariance to re-storing),
the verdict model applied to them, and the reproducibility of its training data."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from qcgate.contract.artifacts import AIR_FEATURES, FEATURE_NAMES, artifact_features, slice_features
from qcgate.contract.verdict_model import VerdictModel, default_verdict_path, load_verdict_model
from qcgate.models.code_key import code_only
from qcgate.models.corruption import corrupt
from qcgate.models.verdict.data import make_base, restore, samples_for_base
from qcgate.models.verdict.evidence import auc
from qcgate.models.verdict.generate import data_key


def _phantom(sigma: float = 0.02, size: int = 160, seed: int = 0) -> np.ndarray:
    """Ellipses of three intensities on air, with Rician noise of per-channel ``sigma``."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[:size, :size] / size - 0.5
    clean = np.where((r / 0.38) ** 2 + (c / 0.3) ** 2 < 1, 1.0, 0.0)
    clean = clean + np.where(((r - 0.1) / 0.1) ** 2 + (c / 0.12) ** 2 < 1, 0.6, 0.0)
    clean = clean - np.where(((r + 0.15) / 0.08) ** 2 + ((c - 0.1) / 0.06) ** 2 < 1, 0.5, 0.0)
    noise = sigma * (rng.standard_normal((2, size, size)))
    return np.hypot(clean + noise[0], noise[1])


@pytest.mark.xfail(
    strict=True,
    reason="spike compares powers in outer k-space, which an interpolated or filtered clean slice "
    "leaves holding little but rounding, so 8 bits move it (0.2-0.4 on these validation bases, 1.8 "
    "on test base 200001); a storage floor fixes it (docs/candidates/verdict-k3.patch) but changes "
    "the verdict's rows and ships only with a refit that passes its rules, which K3 did not",
)
@pytest.mark.parametrize("seed", [100006, 100018])  # validation bases that 8 bits moved most
def test_the_bit_depth_of_a_clean_slice_barely_moves_spike_and_a_spike_still_does(seed: int) -> None:
    base, _ = make_base(seed)
    image = np.abs(base)
    top = image.max()
    spike = {}
    for name, levels in (("as synthesised", None), ("8 bits", 255), ("12 bits", 4095)):
        features = slice_features(image if levels is None else np.round(image / top * levels))
        assert features is not None
        spike[name] = features["spike"]
    r, c = np.mgrid[: image.shape[0], : image.shape[1]]
    stripes = 0.1 * np.median(image[image > 0.1 * top]) * np.cos(2 * np.pi * (0.21 * r + 0.13 * c))
    spiked = slice_features(np.abs(image + stripes))
    assert spiked is not None
    assert spiked["spike"] > spike["as synthesised"] + 1.0, (spiked["spike"], spike)
    assert abs(spike["12 bits"] - spike["as synthesised"]) < 0.02, spike
    assert abs(spike["8 bits"] - spike["as synthesised"]) < 0.1, spike


def test_noise_recovers_known_sigma_within_15_percent() -> None:
    for sigma in (0.01, 0.03, 0.08):
        image = _phantom(sigma)
        features = slice_features(image)
        level = np.median(image[image > 0.1 * np.percentile(image, 99.5)])
        assert features is not None
        assert math.exp(features["noise"]) * level == pytest.approx(sigma, rel=0.15)


def test_blurred_copy_has_a_larger_blur_feature() -> None:
    image = _phantom(0.01)
    sharp = slice_features(image)
    blurred = slice_features(ndimage.gaussian_filter(image, 2.0))
    assert sharp is not None
    assert blurred is not None
    assert blurred["blur"] > sharp["blur"] + 0.2
    assert blurred["hf_loss"] > sharp["hf_loss"]


def test_spike_raises_the_spike_feature() -> None:
    image = _phantom(0.02)
    r, c = np.mgrid[: image.shape[0], : image.shape[1]]
    striped = np.abs(image + 0.05 * np.cos(2 * np.pi * (0.21 * r + 0.13 * c)))
    clean_value, spiked = slice_features(image), slice_features(striped)
    assert clean_value is not None
    assert spiked is not None
    assert spiked["spike"] > clean_value["spike"] + 1.0


def test_bias_field_raises_the_bias_feature() -> None:
    image = _phantom(0.01)
    r, _ = np.mgrid[: image.shape[0], : image.shape[1]] / image.shape[0]
    before, after = slice_features(image), slice_features(image * np.exp(0.8 * (r - 0.5)))
    assert before is not None
    assert after is not None
    assert after["bias"] > before["bias"] + 0.05


@pytest.mark.parametrize(
    "restore",
    [
        lambda x: x * 1234.5,
        lambda x: x * 1e-3,
        lambda x: x[::-1],
        lambda x: x[:, ::-1],
        lambda x: x.T,
        lambda x: np.pad(x, ((7, 30), (0, 12))),
    ],
    ids=["scale-up", "scale-down", "flip-rows", "flip-cols", "transpose", "zero-pad"],
)
def test_features_are_invariant_to_benign_restoring(restore) -> None:
    image = _phantom(0.02)
    reference, restored = slice_features(image), slice_features(restore(image))
    assert reference is not None
    assert restored is not None
    for name in FEATURE_NAMES:
        assert restored[name] == pytest.approx(reference[name], abs=1e-3), name


@pytest.mark.xfail(
    strict=True,
    reason="pe_anisotropy keeps a squared difference by the tissue mask at its first pixel, so a flip "
    "shifts the edge differences it counts by one pixel (0.18 here); the fix (docs/training.md, 2026-12-05) "
    "changes the verdict's rows and ships only with a refit that passes, which the first did not",
)
def test_features_of_a_textured_synthetic_slice_are_invariant_to_flips_and_transposition() -> None:
    """A synthetic test base with sharp tissue edges, where the smooth phantom above hides what a
    one-pixel shift of the counted differences does."""
    base, _ = make_base(200_002)
    image = np.abs(base)
    reference = slice_features(image)
    assert reference is not None
    for restored in (slice_features(image[::-1]), slice_features(image[:, ::-1]), slice_features(image.T)):
        assert restored is not None
        for name in FEATURE_NAMES:
            assert restored[name] == pytest.approx(reference[name], abs=1e-3), name


def test_zero_filled_air_is_judged_from_the_anatomy() -> None:
    image = _phantom(0.03)
    mask = ndimage.binary_dilation(image > 0.3, iterations=3)
    noisy_air, zero_air = slice_features(image), slice_features(np.where(mask, image, 0.0))
    assert noisy_air is not None
    assert zero_air is not None
    assert noisy_air["air_usable"] == 1.0
    assert zero_air["air_usable"] == 0.0
    assert zero_air["noise"] == pytest.approx(noisy_air["noise"], abs=0.05)
    assert zero_air["blur"] == pytest.approx(noisy_air["blur"], abs=0.05)


def test_stack_gives_per_slice_values_and_a_median() -> None:
    stack = np.stack([_phantom(0.02, seed=s) for s in range(5)])
    stack[0] = 0.0  # an empty slice is not assessed
    features = artifact_features(stack)
    assert features is not None
    assert list(features.slices) == [1, 2, 3, 4]
    assert features.values["noise"] == pytest.approx(float(np.median(features.per_slice["noise"])))
    assert artifact_features(np.zeros((3, 32, 32))) is None


def test_cropping_to_the_anatomy_keeps_the_spectral_features() -> None:
    """The tissue window is tapered at the FOV edge, so a crop adds no cut to the spectrum."""
    image = _phantom(0.02, size=192)
    rows = np.flatnonzero((image > 0.3).any(axis=1))
    cols = np.flatnonzero((image > 0.3).any(axis=0))
    cropped = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    reference, restored = slice_features(image), slice_features(cropped)
    assert reference is not None
    assert restored is not None
    assert restored["spectral_cliff"] == pytest.approx(reference["spectral_cliff"], abs=0.25)
    assert restored["edge_wrap"] < 0.3


def test_a_folded_field_of_view_raises_edge_wrap_above_a_crop() -> None:
    image = _phantom(0.02, size=192)
    rows = np.flatnonzero((image > 0.3).any(axis=1))
    first, extent = rows[0], rows[-1] - rows[0] + 1
    period = int(0.7 * extent)
    start = first + (extent - period) // 2
    folded = image[start : start + period].copy()
    folded[: start - first] += image[start + period : rows[-1] + 1][: start - first]
    cropped = image[rows[0] : rows[-1] + 1]
    wrapped, plain = slice_features(folded), slice_features(cropped)
    assert wrapped is not None
    assert plain is not None
    assert wrapped["edge_wrap"] > plain["edge_wrap"] + 0.3


@pytest.mark.slow  # twelve synthetic slices, each wrapped along both axes: about 10 s
def test_a_wrapped_field_of_view_continues_across_its_edges_where_a_crop_does_not() -> None:
    """``wrap_seam`` on the simulator's wrap-around (severity 0.8) against the same clean slices
    cropped to the anatomy or zero-filled: they hardly overlap."""
    clean, wrapped = [], []
    for seed in range(100_000, 100_012):
        base, foreground = make_base(seed)
        rng = np.random.default_rng(seed)
        stored, _ = restore(np.abs(base), foreground, rng, p=0.0, strong=True)
        for image in (np.abs(base), stored):
            clean.append(_feature(image, "wrap_seam"))
        for axis in (-2, -1):
            folded, _ = corrupt(base, "wrap_around", 0.8, rng, phase_encode_axis=axis)
            wrapped.append(_feature(np.abs(folded), "wrap_seam"))
    assert np.median(clean) < 0.05
    assert np.median(wrapped) > 0.15
    assert auc([-v for v in clean], [-v for v in wrapped]) > 0.85


def _feature(image: np.ndarray, name: str) -> float:
    features = slice_features(image)
    assert features is not None
    return features[name]


def test_a_half_fov_ghost_over_the_anatomy_raises_ghost_overlap_even_without_air() -> None:
    image = _phantom(0.01, size=192)
    ghosted = np.hypot(image, 0.4 * np.roll(image, 96, axis=0))
    mask = ndimage.binary_dilation(image > 0.3, iterations=3)
    clean, ghost = slice_features(image), slice_features(ghosted)
    zero_air = slice_features(np.where(mask | (ghosted > 0.3), ghosted, 0.0))
    assert clean is not None
    assert ghost is not None
    assert zero_air is not None
    assert clean["ghost_overlap"] < 0.1
    assert ghost["ghost_overlap"] > clean["ghost_overlap"] + 0.2
    assert zero_air["ghost_overlap"] > clean["ghost_overlap"] + 0.2


def test_replicas_smeared_along_one_axis_raise_bg_streak() -> None:
    """Motion during phase encoding repeats the object along that axis only: its air brightens in
    line with the object, not beside it; noise-only air gives about 0 whichever axis is phase."""
    clean = _phantom(0.02, size=192)
    moved = clean.copy()
    for shift in (-24, -12, 12, 24):  # faint copies of the object along the rows (the PE axis)
        moved = moved + 0.08 * np.roll(_phantom(0.0, size=192), shift, axis=0)
    before, after, turned = slice_features(clean), slice_features(moved), slice_features(moved.T)
    assert before is not None
    assert after is not None
    assert turned is not None
    assert before["bg_streak"] < 0.01
    assert after["bg_streak"] > before["bg_streak"] + 0.02
    assert turned["bg_streak"] == pytest.approx(after["bg_streak"], abs=1e-6), "either axis may be PE"


def test_air_features_come_only_from_slices_whose_air_holds_noise() -> None:
    noisy = _phantom(0.03, seed=1)
    zeroed = np.where(ndimage.binary_dilation(noisy > 0.3, iterations=3), noisy, 0.0)
    features = artifact_features(np.stack([noisy, zeroed, zeroed]))
    assert features is not None
    assert features.air_per_slice is not None
    assert list(features.air_per_slice) == [1.0, 0.0, 0.0]
    alone = slice_features(noisy)
    assert alone is not None
    for name in AIR_FEATURES:
        assert features.values[name] == pytest.approx(alone[name])


def test_at_most_eight_slices_of_a_volume_are_assessed() -> None:
    volume = np.stack([_phantom(0.02, size=256, seed=s) for s in range(40)]).astype(np.float32)
    features = artifact_features(volume)
    assert features is not None
    assert len(features.slices) == 8  # at most eight slices are assessed, evenly spread


# ---- the verdict model ---------------------------------------------------------------------


def _tiny_model() -> VerdictModel:
    names = list(FEATURE_NAMES)
    return VerdictModel(
        {
            "format": "qcgate-verdict/1",
            "feature_names": names,
            "knots": {name: [-6.0, 0.0] if name == "noise" else [0.0, 1.0] for name in names},
            "air_fill": dict.fromkeys(AIR_FEATURES, 0.25),
            "quality": {
                "intercept": 2.0,
                "weights": [1.0] * len(names),
                "calibration": {"x": [0.0, 100.0], "y": [0.0, 100.0]},
            },
            "findings": {
                "noise": {"intercept": -2.0, "weights": [4.0] + [0.0] * (len(names) - 1), "threshold": 50.0},
                "blur": {
                    "intercept": -2.0,
                    "weights": [0.0, 4.0] + [0.0] * (len(names) - 2),
                    "threshold": 50.0,
                },
            },
        }
    )


def test_the_model_reads_clean_air_where_the_air_is_not_usable() -> None:
    model = _tiny_model()
    values = dict.fromkeys(FEATURE_NAMES, 0.0)
    usable, unusable = model.rows(values, 1.0), model.rows(values, 0.0)
    for j, name in enumerate(FEATURE_NAMES):
        assert usable[0, j] == 0.0
        assert unusable[0, j] == (0.25 if name in AIR_FEATURES else 0.0)


def test_the_quality_head_fills_missing_air_from_what_the_anatomy_predicts() -> None:
    document = dict(_tiny_model().document)
    head = {**document["quality"], "air_fill": dict.fromkeys(AIR_FEATURES, 0.1)}
    head["air_fill_weights"] = {"bg_corr": {"blur": 0.5}}
    model = VerdictModel({**document, "quality": head})
    values = {name: np.array([0.4 if name == "blur" else 0.0] * 2) for name in FEATURE_NAMES}
    usable = np.array([1.0, 0.0])
    for_quality, for_findings = model.rows(values, usable, head), model.rows(values, usable)
    bg_corr, bg_ghost = FEATURE_NAMES.index("bg_corr"), FEATURE_NAMES.index("bg_ghost")
    assert for_quality[0, bg_corr] == 0.0  # measured air is kept
    assert for_quality[1, bg_corr] == pytest.approx(0.1 + 0.5 * 0.4)  # the head's fill + the anatomy's share
    assert for_quality[1, bg_ghost] == pytest.approx(0.1)  # no weights: the head's constant
    assert for_findings[1, bg_corr] == 0.25  # findings read the document's clean air, never inferred air
    assert model.quality_of(values, usable) == pytest.approx(model.quality(for_quality))


def test_the_model_is_monotone_and_names_the_worst_slices() -> None:
    model = _tiny_model()
    better = dict.fromkeys(FEATURE_NAMES, 0.0)
    better["noise"] = -5.0
    worse = {**better, "noise": -1.0, "blur": 0.5}
    assert model.quality(model.rows(worse))[0] < model.quality(model.rows(better))[0]
    stack = np.stack([_phantom(sigma, seed=s) for s, sigma in enumerate((0.01, 0.2, 0.2))])
    verdict = model.assess(stack)
    assert verdict.quality is not None
    assert 0.0 <= verdict.quality <= 100.0
    assert set(verdict.severities) == {"noise", "blur"}
    noise = [finding for finding in verdict.findings if finding.kind == "noise"]
    assert len(noise) == 1
    assert set(noise[0].slices) == {1, 2}  # the two noisy slices, not the clean one
    assert model.assess(np.zeros((2, 32, 32))).quality is None


def test_a_worst_kind_quality_head_is_as_good_as_the_worst_artifact_and_monotone() -> None:
    """``"form": "worst_kind"``: quality = 100 (1 - max over kinds of a monotone logistic)."""
    names = list(FEATURE_NAMES)
    tiny = _tiny_model().document
    weights = np.zeros((len(names), 2))
    weights[0, 0], weights[1, 1] = 4.0, 6.0  # noise -> first kind, blur -> second
    model = VerdictModel(
        {
            **tiny,
            "quality": {
                "form": "worst_kind",
                "kinds": ["noise", "blur"],
                "intercepts": [-3.0, -3.0],
                "weights": weights.tolist(),
                "calibration": {"x": [0.0, 100.0], "y": [0.0, 100.0]},
            },
        }
    )
    values = dict.fromkeys(FEATURE_NAMES, 0.0)
    values["noise"], values["blur"] = -3.0, 0.5  # ramps 0.5 and 0.5
    expected = 100.0 * (1.0 - 1.0 / (1.0 + math.exp(-(-3.0 + 6.0 * 0.5))))  # blur's head is worse
    assert model.quality(model.rows(values))[0] == pytest.approx(expected)
    worse = {**values, "noise": -1.0}
    assert model.quality(model.rows(worse))[0] <= model.quality(model.rows(values))[0]


def test_the_shipped_model_loads_and_judges_a_phantom() -> None:
    model = load_verdict_model(default_verdict_path())
    assert model.feature_names == (*FEATURE_NAMES, *model.learned_inputs)
    verdict = model.assess(_phantom(0.02))
    assert verdict.quality is not None
    assert 0.0 <= verdict.quality <= 100.0
    assert all(0.0 <= finding.severity <= 100.0 for finding in verdict.findings)


def test_the_data_cache_key_follows_the_code_not_its_prose() -> None:
    code = "def f():\n    return 1\n"
    documented = 'def f():\n    """Say what f does."""\n    return 1  # one\n'
    assert code_only(code) == code_only(documented)
    assert code_only(code) != code_only(code.replace("1", "2"))
    assert data_key() == data_key()
    assert data_key(copies=3) != data_key()


@pytest.mark.slow  # two bases, twice: about 5 s
def test_training_samples_are_reproducible() -> None:
    first = [dataclasses.asdict(s) for s in samples_for_base(7, copies=3)]
    again = [dataclasses.asdict(s) for s in samples_for_base(7, copies=3)]
    assert first == again
    assert [row["copy"] for row in first] == [0, 1, 2]
    assert first[0]["label"] == first[1]["label"] == 100.0
    assert first[1]["restorings"]  # the second clean copy is always cropped, zero-filled or stripped
