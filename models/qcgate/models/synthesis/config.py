"""Every range the synthetic MR generator draws from, in one frozen dataclass.

Training records the config beside its checkpoints, so the config says everything that shapes the
data: which anatomies and contrasts, how large and how deformed. Weights are tuples of pairs rather
than dicts so the config stays hashable and immutable. Validated on construction: a config that
exists can generate images.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from qcgate.models.synthesis.sequences import CONTRASTS
from qcgate.models.synthesis.tissues import FIELD_STRENGTHS_T

__all__ = ["ORIENTATIONS", "SOURCES", "SynthesisConfig", "choose"]

SOURCES = ("mni", "labels", "body", "phantom")
ORIENTATIONS = ("axial", "coronal", "sagittal")

Weights = tuple[tuple[str, float], ...]
Range = tuple[float, float]
Key = TypeVar("Key")


@dataclass(frozen=True)
class SynthesisConfig:
    """Ranges for one family of synthetic images; the defaults are what training uses."""

    source_weights: Weights = (("mni", 0.25), ("labels", 0.35), ("body", 0.25), ("phantom", 0.15))
    contrast_weights: Weights = (("T1w", 0.35), ("T2w", 0.3), ("PD", 0.15), ("FLAIR", 0.2))
    field_weights: tuple[tuple[float, float], ...] = ((1.5, 0.4), (3.0, 0.6))
    orientation_weights: Weights = (("axial", 0.5), ("coronal", 0.25), ("sagittal", 0.25))
    matrix: tuple[int, int] = (128, 512)  # slices: pixels along the longer in-plane axis
    volume_matrix: tuple[int, int] = (96, 256)  # volumes: the same, when no shape is asked for
    volume_slices: tuple[int, int] = (24, 96)
    phase_fov: Range = (0.75, 1.0)  # shorter in-plane axis / longer, in pixels
    fov_margin: Range = (0.85, 1.35)  # field of view / object size along the longer in-plane axis
    pixel_mm: Range = (0.3, 2.0)  # in-plane spacing is clipped to this (small matrices crop)
    slice_thickness_mm: Range = (1.0, 6.0)
    volume_thickness_mm: Range = (1.0, 5.0)  # slice spacing of volumes, slices contiguous
    subslice_mm: float = 2.0  # through-slice samples, this far apart, are averaged (slice profile)
    max_subslices: int = 3
    slice_position: float = 0.5  # slices centre within this fraction of the object's half-size
    rotation_deg: float = 15.0
    scale: Range = (0.85, 1.15)
    shear: float = 0.05
    elastic_mm: float = 4.0  # peak-ish (2 sigma) elastic displacement
    elastic_sigma_mm: float = 30.0  # smoothness of the elastic displacement
    flip_probability: float = 0.1  # per in-plane axis
    relaxation_spread: float = 0.08  # log-normal spread of T1, T2 (PD half of it) per image
    texture_strength: Range = (0.02, 0.08)  # multiplicative texture amplitude per compartment
    bias_strength: float = 0.3  # log-amplitude of the smooth receive-bias field
    phase_rad: float = 3.0  # amplitude of the smooth background phase

    def __post_init__(self) -> None:
        _check_weights("source_weights", self.source_weights, SOURCES)
        _check_weights("contrast_weights", self.contrast_weights, CONTRASTS)
        _check_weights("field_weights", self.field_weights, FIELD_STRENGTHS_T)
        _check_weights("orientation_weights", self.orientation_weights, ORIENTATIONS)
        for name in ("matrix", "volume_matrix", "volume_slices"):
            _check_range(name, getattr(self, name), lowest=8)
        _check_range("subslice_mm", (self.subslice_mm, self.subslice_mm), lowest=0.1)
        for name in ("fov_margin", "pixel_mm", "slice_thickness_mm", "volume_thickness_mm", "scale"):
            _check_range(name, getattr(self, name), lowest=1e-3)
        _check_range("phase_fov", self.phase_fov, lowest=1e-3, highest=1.0)
        _check_range("texture_strength", self.texture_strength, lowest=0.0, highest=0.5)
        if self.max_subslices < 1:
            raise ValueError(f'Argument "max_subslices" must be at least 1, got {self.max_subslices}.')
        for name in ("slice_position", "flip_probability", "shear"):
            _check_range(name, (0.0, getattr(self, name)), lowest=0.0, highest=1.0)
        for name in ("rotation_deg", "elastic_mm", "relaxation_spread", "bias_strength", "phase_rad"):
            _check_range(name, (0.0, getattr(self, name)), lowest=0.0)
        _check_range("elastic_sigma_mm", (self.elastic_sigma_mm, self.elastic_sigma_mm), lowest=1.0)


def choose(weights: tuple[tuple[Key, float], ...], rng: np.random.Generator) -> Key:
    """One key of ``weights``, drawn with probability proportional to its weight."""
    keys = [key for key, _ in weights]
    probabilities = np.array([weight for _, weight in weights], dtype=np.float64)
    return keys[rng.choice(len(keys), p=probabilities / probabilities.sum())]


def _check_weights(name: str, weights: tuple[tuple[object, float], ...], allowed: Collection[object]) -> None:
    keys = [key for key, _ in weights]
    unknown = [key for key in keys if key not in allowed]
    if unknown or len(set(keys)) != len(keys):
        raise ValueError(f'Argument "{name}" must name distinct keys from {tuple(allowed)}, got {keys}.')
    values = [weight for _, weight in weights]
    if not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise ValueError(f'Argument "{name}" must have non-negative weights with a positive sum.')


def _check_range(name: str, value: tuple[float, float], lowest: float, highest: float = math.inf) -> None:
    low, high = value
    if not lowest <= low <= high <= highest:
        raise ValueError(
            f'Argument "{name}" must be (low, high) with {lowest} <= low <= high <= {highest}, got {value}.'
        )
