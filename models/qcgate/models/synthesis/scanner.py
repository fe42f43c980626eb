"""From tissue compartments to the clean complex image a scanner would reconstruct.

Signal per compartment from its (jittered) relaxation and the sequence, mixed by partial-volume
weight; a fractal texture per compartment, because no tissue is uniform; a smooth receive-bias
field; and a smooth phase (B0 offsets, coil phase), so that the complex Gaussian noise the corruption
simulator adds later becomes Rician in the magnitude, as on a scanner. Inversion recovery keeps its
sign: tissue below its null point comes out with opposite phase.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass

import numpy as np

from qcgate.models.synthesis.anatomy import Compartment
from qcgate.models.synthesis.config import SynthesisConfig
from qcgate.models.synthesis.fields import Canvas
from qcgate.models.synthesis.sequences import Sequence, signal
from qcgate.models.synthesis.tissues import sample_relaxation

__all__ = ["Acquisition", "acquire"]

_TEXTURES = 3  # base textures; each compartment wears one, with its own sign and amplitude
_FOREGROUND = 0.5  # a voxel belongs to the object when tissue fills at least this fraction
_SCALE_PERCENTILE = 99.0


@dataclass(frozen=True)
class Acquisition:
    """A clean complex image scaled so the foreground's 99th magnitude percentile is 1."""

    image: np.ndarray  # complex64
    foreground: np.ndarray  # bool


def acquire(
    compartments: SequenceOf[Compartment],
    sequence: Sequence,
    field_T: float,
    config: SynthesisConfig,
    canvas: Canvas,
) -> Acquisition:
    """The complex image of ``compartments`` (weights on the canvas grid) under ``sequence``."""
    rng = canvas.rng
    shared = {}  # one subject: every compartment of a tissue starts from the same draw
    for tissue in sorted({c.tissue for c in compartments}):
        shared[tissue] = sample_relaxation(tissue, field_T, config.relaxation_spread, rng)
    textures = canvas.textures(
        [float(rng.uniform(2.0, 10.0)) for _ in range(_TEXTURES)],
        [float(rng.uniform(0.6, 1.4)) for _ in range(_TEXTURES)],
    )

    plain = np.zeros(canvas.shape, np.float32)
    textured = np.zeros((_TEXTURES, *canvas.shape), np.float32)  # signal under each texture
    occupancy = np.zeros(canvas.shape, np.float32)
    for compartment in compartments:
        base = shared[compartment.tissue]
        t1, t2, pd = np.exp(rng.normal(0.0, compartment.jitter, 3)) * (base.t1_ms, base.t2_ms, base.pd)
        level = np.float32(signal(sequence, t1, t2, pd))
        amplitude = np.float32(rng.choice((-1, 1)) * rng.uniform(*config.texture_strength))
        share = compartment.weight * level
        plain += share
        textured[rng.integers(_TEXTURES)] += share * amplitude
        occupancy += compartment.weight
    signed = plain + (textures * textured).sum(axis=0)  # inversion recovery can go negative

    fov = min(n * s for n, s in zip(canvas.shape, canvas.spacing_mm, strict=True))
    bias = np.exp(np.float32(config.bias_strength * rng.uniform(0.3, 1.0)) * canvas.field(fov / 3))
    phase = np.float32(config.phase_rad * rng.uniform(0.2, 1.0)) * canvas.field(fov / 4)
    phase += np.float32(rng.uniform(-np.pi, np.pi))
    image = (signed * bias * np.exp(1j * phase)).astype(np.complex64)

    foreground = occupancy >= _FOREGROUND
    reference = np.abs(image[foreground]) if foreground.any() else np.abs(image)
    scale = np.percentile(reference, _SCALE_PERCENTILE)
    return Acquisition(
        image=(image / np.float32(max(scale, 1e-12))).astype(np.complex64), foreground=foreground
    )
