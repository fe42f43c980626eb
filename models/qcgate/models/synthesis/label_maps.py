"""Random label maps with per-label tissue and texture, in the spirit of SynthSeg.

Why: a metric trained on the smooth MNI template alone learned "smooth = clean" and scored blur as an
improvement (issue 3). Real scans have sharp boundaries, thin structures and textured tissue, so these
objects are made of them: regions from the soft argmax of smooth random fields (boundaries one pixel
wide, wiggly at two scales), thin curvilinear structures (septa, vessels, sulci) where a random field
crosses zero, and small spots (lesions, vessels in cross-section) where one peaks. Each region is a
real tissue with its own jitter of T1, T2 and PD, so contrast stays physical while no two labels of
the same tissue look alike.

:func:`random_partition` and :func:`thin_structures` are also what the body source builds from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from qcgate.models.synthesis.anatomy import Compartment, Composition, Vector3, ellipsoid_distance, ramp
from qcgate.models.synthesis.fields import Canvas
from qcgate.models.synthesis.tissues import TISSUES

__all__ = ["LabelMap", "random_partition", "sample_label_map", "spots", "thin_structures"]

_LABEL_TISSUES = tuple(tissue for tissue in TISSUES if tissue != "air")
_GRADIENT = 1.0 / math.sqrt(2.0)  # a unit field's gradient per axis is about this / sigma (fields.py)


@dataclass(frozen=True)
class LabelMap:
    """A rough ellipsoid filled with random regions, thin structures and spots."""

    extent_mm: Vector3
    outline_scale: float  # the outline's size relative to extent: above ~1.3 it overfills the view
    outline_roughness: float
    regions: tuple[str, ...]
    region_sigma_mm: float
    region_detail: float  # amplitude of the finer boundary wiggle
    region_jitter: float
    lines: tuple[tuple[str, float, float], ...]  # (tissue, sigma_mm, width_mm)
    dots: tuple[tuple[str, float, float], ...]  # (tissue, sigma_mm, level in field std)

    def render(self, points: np.ndarray, canvas: Canvas) -> list[Compartment]:
        z, y, x = (e * self.outline_scale / 2 for e in self.extent_mm)
        roughness = self.outline_roughness * min(z, y, x)
        outline = ellipsoid_distance(points, (0.0, 0.0, 0.0), (z, y, x))
        inside = ramp(outline + roughness * canvas.field(min(z, y, x) / 3), canvas.edge_mm)

        labels = Composition()
        shares = random_partition(canvas, len(self.regions), self.region_sigma_mm, self.region_detail)
        labels.paint_mixture(
            [(t, s * inside) for t, s in zip(self.regions, shares, strict=True)], self.region_jitter
        )
        for tissue, sigma, width in self.lines:
            labels.paint(tissue, thin_structures(canvas, sigma, width) * inside, self.region_jitter)
        for tissue, sigma, level in self.dots:
            labels.paint(tissue, spots(canvas, sigma, level) * inside, self.region_jitter)
        return labels.compartments()


def random_partition(
    canvas: Canvas, count: int, sigma_mm: float, detail: float, elongation: float = 1.0
) -> list[np.ndarray]:
    """Fractions of ``count`` random regions, summing to one, with boundaries a pixel wide.

    Soft argmax of ``count`` smooth fields, each with a finer field of relative amplitude ``detail``
    added so boundaries wiggle at two scales. The softmax temperature is set from the fields' typical
    gradient, so a boundary spans about one pixel whatever the region size. ``elongation`` stretches
    the regions along the object's z axis (:meth:`Canvas.field`).
    """
    fields = np.stack(
        [
            canvas.field(sigma_mm, elongation) + np.float32(detail) * canvas.field(sigma_mm / 4, elongation)
            for _ in range(count)
        ]
    )
    gradient = _GRADIENT / sigma_mm * math.sqrt(1.0 + 16.0 * detail**2)
    temperature = np.float32(gradient * canvas.edge_mm / 2)
    return list(softmax(fields / temperature, axis=0).astype(np.float32))


def thin_structures(canvas: Canvas, sigma_mm: float, width_mm: float, elongation: float = 1.0) -> np.ndarray:
    """Fraction of curvilinear structures ``width_mm`` wide along the zero set of a smooth field."""
    field = canvas.field(sigma_mm, elongation)
    distance = np.abs(field) / canvas.gradient_magnitude(field) - np.float32(width_mm / 2)
    return ramp(distance, canvas.edge_mm)


def spots(canvas: Canvas, sigma_mm: float, level: float) -> np.ndarray:
    """Fraction of blobs where a smooth field exceeds ``level`` standard deviations."""
    field = canvas.field(sigma_mm)
    return ramp((np.float32(level) - field) / canvas.gradient_magnitude(field), canvas.edge_mm)


def sample_label_map(rng: np.random.Generator) -> LabelMap:
    """A label map 12 to 40 cm across: 3 to 12 regions, 1 to 5 kinds of line, up to 3 of spot."""
    return LabelMap(
        extent_mm=(float(rng.uniform(120, 400)), float(rng.uniform(120, 400)), float(rng.uniform(120, 400))),
        outline_scale=float(rng.uniform(0.8, 1.6)),
        outline_roughness=float(rng.uniform(0.0, 0.15)),
        regions=tuple(_tissues(rng, int(rng.integers(3, 13)))),
        region_sigma_mm=float(rng.uniform(4.0, 25.0)),
        region_detail=float(rng.uniform(0.0, 0.6)),
        region_jitter=float(rng.uniform(0.05, 0.25)),
        lines=tuple(
            (t, float(rng.uniform(3.0, 15.0)), float(rng.uniform(0.5, 3.0)))
            for t in _tissues(rng, int(rng.integers(1, 6)))
        ),
        dots=tuple(
            (t, float(rng.uniform(1.0, 5.0)), float(rng.uniform(1.5, 2.8)))
            for t in _tissues(rng, int(rng.integers(0, 4)))
        ),
    )


def _tissues(rng: np.random.Generator, count: int) -> list[str]:
    return [_LABEL_TISSUES[i] for i in rng.integers(len(_LABEL_TISSUES), size=count)]
