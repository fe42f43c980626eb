"""The clean synthetic MR generator: deterministic, every source and contrast reachable, physical
contrast, images scaled and phased as documented, no network, and label maps sharper than the template."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

import qcgate.models.synthesis as synthesis
from qcgate.models.synthesis import SynthesisConfig, SyntheticImage, synthesize_slice, synthesize_volume
from qcgate.models.synthesis.anatomy import Compartment
from qcgate.models.synthesis.config import SOURCES
from qcgate.models.synthesis.fields import Canvas
from qcgate.models.synthesis.mni import mni_maps
from qcgate.models.synthesis.scanner import acquire
from qcgate.models.synthesis.sequences import CONTRASTS, Sequence, csf_null_ti_ms, sample_sequence, signal
from qcgate.models.synthesis.tissues import FIELD_STRENGTHS_T, TISSUES

SMALL = SynthesisConfig(matrix=(96, 128), volume_matrix=(32, 48), volume_slices=(8, 12))


def config(**overrides: Any) -> SynthesisConfig:
    """A config with small matrices (fast tests), plus ``overrides``."""
    return replace(SMALL, **overrides)


def only(source: str | None = None, contrast: str | None = None, **overrides: Any) -> SynthesisConfig:
    """A small config that always draws ``source`` and/or ``contrast``."""
    if source:
        overrides["source_weights"] = ((source, 1.0),)
    if contrast:
        overrides["contrast_weights"] = ((contrast, 1.0),)
    return config(**overrides)


def assert_same(a: SyntheticImage, b: SyntheticImage) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.foreground, b.foreground)
    assert a.spacing_mm == b.spacing_mm
    assert a.provenance == b.provenance


def test_public_api() -> None:
    expected = {"DATA_VERSION", "SynthesisConfig", "SyntheticImage", "synthesize_slice", "synthesize_volume"}
    assert expected <= set(synthesis.__all__)
    assert all(hasattr(synthesis, name) for name in synthesis.__all__)
    assert isinstance(synthesis.DATA_VERSION, str)
    assert tuple(synthesis.ANATOMY_SOURCES) == SOURCES


def test_same_seed_same_image_and_different_seed_different_image() -> None:
    assert_same(synthesize_slice(5, config()), synthesize_slice(5, config()))
    assert_same(synthesize_volume(5, config()), synthesize_volume(5, config()))
    first, second = synthesize_slice(5, only("labels")), synthesize_slice(6, only("labels"))
    assert first.image.shape != second.image.shape or not np.array_equal(first.image, second.image)


def test_changing_only_the_contrast_keeps_the_anatomy_and_pose() -> None:
    examples = [synthesize_slice(11, only("labels", contrast)) for contrast in CONTRASTS]
    for example in examples[1:]:
        np.testing.assert_array_equal(example.foreground, examples[0].foreground)
        assert example.provenance["anatomy"] == examples[0].provenance["anatomy"]
        assert example.provenance["fov_mm"] == examples[0].provenance["fov_mm"]


@pytest.mark.parametrize(
    "source",
    # mni loads and resamples the MNI template (about 2 s): slow
    [pytest.param(source, marks=pytest.mark.slow) if source == "mni" else source for source in SOURCES],
)
def test_every_source_renders_an_object_with_content(source: str) -> None:
    for seed in range(3):
        example = synthesize_slice(seed, only(source))
        assert example.provenance["source"] == source
        assert example.image.dtype == np.complex64
        assert example.magnitude.dtype == np.float32
        assert example.image.ndim == len(example.spacing_mm) == 2
        assert 0.05 < example.foreground.mean() <= 1.0
        assert example.magnitude[example.foreground].std() > 0.05  # tissue contrast, not a flat blob


@pytest.mark.parametrize("contrast", CONTRASTS)
def test_every_contrast_is_reachable_with_its_sequence(contrast: str) -> None:
    example = synthesize_slice(1, only("phantom", contrast))
    provenance = example.provenance
    assert provenance["contrast"] == contrast
    assert (provenance["TI"] is not None) == (contrast == "FLAIR")
    assert 0 < provenance["TE"] < provenance["TR"]  # type: ignore[operator]
    json.dumps(provenance)  # provenance is recorded as JSON beside checkpoints


def test_volumes_have_the_asked_shape_or_one_from_the_config() -> None:
    fixed = synthesize_volume(2, config(), shape=(10, 40, 36))
    assert fixed.image.shape == fixed.foreground.shape == (10, 40, 36)
    assert len(fixed.spacing_mm) == 3
    drawn = synthesize_volume(3, config())
    slices, rows, columns = drawn.image.shape
    assert 8 <= slices <= 12
    assert max(rows, columns) <= 48
    with pytest.raises(ValueError, match='"shape"'):
        synthesize_volume(1, config(), shape=(0, 32, 32))


def test_native_matrix_is_kept() -> None:
    example = synthesize_slice(0, only("body", matrix=(400, 400), phase_fov=(1.0, 1.0)))
    assert example.image.shape == (400, 400)


def test_magnitude_is_abs_of_image_with_foreground_p99_at_one() -> None:
    for seed in range(4):
        example = synthesize_slice(seed, config())
        np.testing.assert_allclose(example.magnitude, np.abs(example.image), rtol=1e-6)
        assert np.percentile(example.magnitude[example.foreground], 99) == pytest.approx(1.0, abs=1e-3)


def test_phase_is_smooth_but_present() -> None:
    for seed in range(3):
        example = synthesize_slice(seed, only(contrast="T2w"))  # no inversion: the phase is the map's
        image, tissue = example.image, example.magnitude > 0.1
        for values, mask in ((image, tissue), (image.T, tissue.T)):
            step = np.angle(values[:, 1:] * np.conj(values[:, :-1]))  # radians per pixel
            assert np.percentile(np.abs(step[mask[:, 1:] & mask[:, :-1]]), 99) < 0.3
        assert np.angle(image[tissue] * np.conj(image[tissue].mean())).std() > 0.1


def test_contrast_physics_on_the_signal_equations() -> None:
    rng = np.random.default_rng(0)
    for field_T in FIELD_STRENGTHS_T:
        for _ in range(50):
            level = {}
            for contrast in CONTRASTS:
                sequence = sample_sequence(contrast, field_T, rng)
                level[contrast] = {
                    name: float(signal(sequence, r[field_T].t1_ms, r[field_T].t2_ms, r[field_T].pd))
                    for name, r in TISSUES.items()
                }
            t1w, t2w, flair = level["T1w"], level["T2w"], level["FLAIR"]
            assert t1w["csf"] < t1w["gm"] < t1w["wm"] < t1w["fat"]  # CSF dark, fat bright on T1w
            assert t2w["csf"] > t2w["gm"] > t2w["wm"]  # fluid bright on T2w
            assert abs(flair["csf"]) < 0.2 * flair["wm"] < 0.2 * flair["gm"]  # FLAIR nulls CSF
            assert level["PD"]["gm"] > level["PD"]["wm"]


def test_flair_ti_nulls_csf_exactly_at_the_nominal_t1() -> None:
    for field_T in FIELD_STRENGTHS_T:
        csf = TISSUES["csf"][field_T]
        ti = csf_null_ti_ms(9000.0, field_T)
        sequence = Sequence("FLAIR", "IR", 9000.0, 100.0, ti_ms=ti)
        assert float(signal(sequence, csf.t1_ms, csf.t2_ms, 1.0)) == pytest.approx(0.0, abs=1e-12)
        early = Sequence("FLAIR", "IR", 9000.0, 100.0, ti_ms=ti / 2)  # not yet through zero: negative
        assert float(signal(early, csf.t1_ms, csf.t2_ms, 1.0)) < 0


@pytest.mark.parametrize(("contrast", "csf_brighter"), [("T1w", False), ("T2w", True), ("FLAIR", False)])
def test_scanner_renders_csf_against_white_matter(contrast: str, csf_brighter: bool) -> None:
    canvas = Canvas((32, 64), (1.0, 1.0), np.random.default_rng(0))
    left = np.zeros(canvas.shape, np.float32)
    left[:, :32] = 1.0
    flat = config(texture_strength=(0.0, 0.0), bias_strength=0.0, relaxation_spread=0.0)
    sequence = sample_sequence(contrast, 3.0, np.random.default_rng(1))
    acquired = acquire([Compartment("csf", left), Compartment("wm", 1.0 - left)], sequence, 3.0, flat, canvas)
    csf, wm = np.abs(acquired.image[:, :32]).mean(), np.abs(acquired.image[:, 32:]).mean()
    assert (csf > wm) == csf_brighter
    assert acquired.foreground.all()


@pytest.mark.slow  # loads and resamples the MNI template: about 2 s
def test_mni_loads_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    mni_maps.cache_clear()
    example = synthesize_slice(0, only("mni"))
    assert example.foreground.mean() > 0.3


@pytest.mark.slow  # loads the MNI template and two label maps: about 2 s
def test_label_maps_have_more_fine_detail_than_the_mni_template() -> None:
    def high_frequency_energy(example: SyntheticImage) -> float:
        inside = ndimage.binary_erosion(example.foreground, iterations=3)
        detail = example.magnitude - ndimage.gaussian_filter(example.magnitude, 1.0)
        return float(np.mean(detail[inside] ** 2))

    energy = {}
    for source in ("labels", "mni"):
        examples = [synthesize_slice(seed, only(source, matrix=(160, 160))) for seed in range(8)]
        energy[source] = np.median([high_frequency_energy(example) for example in examples])
    assert energy["labels"] > 1.5 * energy["mni"]


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"source_weights": (("heart", 1.0),)}, "source_weights"),
        ({"contrast_weights": (("T1w", -1.0),)}, "contrast_weights"),
        ({"field_weights": ((7.0, 1.0),)}, "field_weights"),
        ({"matrix": (512, 128)}, "matrix"),
        ({"phase_fov": (0.5, 1.5)}, "phase_fov"),
        ({"max_subslices": 0}, "max_subslices"),
        ({"flip_probability": 2.0}, "flip_probability"),
    ],
)
def test_config_rejects_bad_arguments_by_name(overrides: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=f'"{argument}"'):
        SynthesisConfig(**overrides)  # type: ignore[arg-type]


def test_seed_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ValueError, match='"seed"'):
        synthesize_slice(-1)
