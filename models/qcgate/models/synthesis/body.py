"""Body-like anatomy: an abdomen or a limb, so the metrics do not learn that MR means a head.

A prototype trained on heads alone reached a Spearman correlation of 0.31 on a shoulder (issue 3). So
here are the tissues of the rest of the body in their usual arrangement: skin-deep fat, a muscle wall,
viscera (bowel, mesenteric fat, fluid, gas) around liver, spleen and kidneys, the aorta and vena cava,
a vertebra (cortical bone around fatty marrow) with its canal, cord and paraspinal muscles; or a limb
whose muscle groups are parted by fat septa around one or two long bones and their vessels. Shapes
are cross-sections extruded along z, so sagittal and coronal slices show long bones and vessels
lengthwise; the elastic deformation bends them. Every position and size is random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qcgate.models.synthesis.anatomy import Compartment, Composition, Vector3, ellipsoid_distance, ramp
from qcgate.models.synthesis.fields import Canvas
from qcgate.models.synthesis.label_maps import random_partition, thin_structures

__all__ = ["Body", "Ellipse", "sample_body"]

_VISCERA = (("fat", 0.35), ("muscle", 0.3), ("csf", 0.2), ("air", 0.1), ("blood", 0.05))
_PART_JITTER = 0.05
_INTERIOR_JITTER = 0.1


@dataclass(frozen=True)
class Ellipse:
    """An elliptic cross-section in (y, x), extruded along z."""

    tissue: str
    center_yx: tuple[float, float]
    semi_yx: tuple[float, float]
    angle_rad: float = 0.0

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) to the ellipse."""
        return ellipsoid_distance(points, (0.0, *self.center_yx), (math.inf, *self.semi_yx), self.angle_rad)


@dataclass(frozen=True)
class Body:
    """Skin outline, subcutaneous fat, an optional muscle wall, a random interior, then solid parts."""

    layout: str  # "trunk" | "limb"
    outline: Ellipse
    length_mm: float  # how much of the body's length a longitudinal view should fit
    fat_mm: float
    wall_mm: float  # muscle wall inside the fat; 0 for limbs, whose interior is muscle
    interior: tuple[str, ...]  # tissue of each random interior region
    interior_sigma_mm: float
    elongation: float  # interior regions stretched along z: long in limbs (muscles), not in bowel
    septa: tuple[tuple[str, float, float], ...]  # thin structures: (tissue, sigma_mm, width_mm)
    parts: tuple[Ellipse, ...]  # painted in order over the interior

    @property
    def extent_mm(self) -> Vector3:
        return (self.length_mm, 2 * self.outline.semi_yx[0], 2 * self.outline.semi_yx[1])

    def render(self, points: np.ndarray, canvas: Canvas) -> list[Compartment]:
        edge = canvas.edge_mm
        roughness = np.float32(0.02 * min(self.outline.semi_yx))
        skin = self.outline.distance(points) + roughness * canvas.field(40.0)
        depth_variation = 1.0 + 0.3 * canvas.field(40.0)  # layers thicken and thin around the body
        fat, wall = self.fat_mm * depth_variation, self.wall_mm * depth_variation

        body = Composition()
        body.paint("fat", ramp(skin, edge))
        if self.wall_mm > 0:
            body.paint("muscle", ramp(skin + fat, edge))
        interior = ramp(skin + fat + wall, edge)
        shares = random_partition(canvas, len(self.interior), self.interior_sigma_mm, 0.3, self.elongation)
        body.paint_mixture(
            [(t, s * interior) for t, s in zip(self.interior, shares, strict=True)], _INTERIOR_JITTER
        )
        for tissue, sigma, width in self.septa:
            body.paint(tissue, thin_structures(canvas, sigma, width, self.elongation) * interior)
        under_fat = ramp(skin + fat, edge)
        for part in self.parts:
            body.paint(part.tissue, ramp(part.distance(points), edge) * under_fat, _PART_JITTER)
        return body.compartments()


def sample_body(rng: np.random.Generator) -> Body:
    """An abdomen (55 %) or a limb (45 %) with random proportions and organs."""
    return _trunk(rng) if rng.random() < 0.55 else _limb(rng)


def _trunk(rng: np.random.Generator) -> Body:
    semi_x = rng.uniform(130, 190)
    semi_y = semi_x * rng.uniform(0.6, 0.8)
    fat, wall = rng.uniform(5, 35), rng.uniform(6, 18)
    radius = rng.uniform(14, 22)  # vertebral body
    spine_y = -semi_y + fat + rng.uniform(45, 65)
    canal_y = spine_y - radius - 9
    aorta = rng.uniform(9, 14)
    parts = [
        *(
            Ellipse("muscle", (spine_y - radius - 14, side * (radius + 10)), _jitter(rng, (22, 20)))
            for side in (-1, 1)
        ),  # paraspinal muscles
        Ellipse("cortical_bone", (spine_y, 0.0), (0.9 * radius, radius)),
        Ellipse("marrow", (spine_y, 0.0), (0.9 * radius - 2.5, radius - 2.5)),
        Ellipse("csf", (canal_y, 0.0), (8.0, 9.0)),
        Ellipse("wm", (canal_y, 0.0), (4.0, 5.0)),  # spinal cord
        Ellipse("blood", (spine_y + radius + 13, -rng.uniform(5, 20)), (aorta, aorta)),
        Ellipse("blood", (spine_y + radius + 15, rng.uniform(18, 30)), _jitter(rng, (10, 15))),  # IVC
    ]
    if rng.random() < 0.75:
        parts.append(
            Ellipse(
                "liver",
                (rng.uniform(-0.1, 0.25) * semi_y, rng.uniform(0.3, 0.5) * semi_x),
                (rng.uniform(0.4, 0.6) * semi_y, rng.uniform(0.3, 0.45) * semi_x),
                rng.uniform(-0.3, 0.3),
            )
        )
    if rng.random() < 0.5:
        parts.append(
            Ellipse(
                "spleen",
                (rng.uniform(-0.2, 0.1) * semi_y, -0.55 * semi_x),
                _jitter(rng, (0.25 * semi_y, 0.15 * semi_x)),
                rng.uniform(-0.5, 0.5),
            )
        )
    if rng.random() < 0.6:
        parts += [
            Ellipse(
                "kidney",
                (spine_y + rng.uniform(0, 10), side * (radius + rng.uniform(35, 55))),
                _jitter(rng, (30, 21)),
                side * rng.uniform(0.2, 0.6),
            )
            for side in (-1, 1)
        ]
    interior = [
        _VISCERA[i][0]
        for i in rng.choice(len(_VISCERA), size=int(rng.integers(4, 10)), p=[w for _, w in _VISCERA])
    ]
    return Body(
        layout="trunk",
        outline=Ellipse("fat", (0.0, 0.0), (float(semi_y), float(semi_x))),
        length_mm=float(2 * semi_x * rng.uniform(0.8, 1.3)),  # the view along the body, not the body
        fat_mm=float(fat),
        wall_mm=float(wall),
        interior=tuple(interior),
        interior_sigma_mm=float(rng.uniform(6, 15)),
        elongation=1.5,
        septa=(),
        parts=tuple(parts),
    )


def _limb(rng: np.random.Generator) -> Body:
    semi_x = rng.uniform(45, 90)
    semi_y = semi_x * rng.uniform(0.75, 1.0)
    fat = rng.uniform(3, 20)
    room = min(semi_x, semi_y) - fat
    radius = rng.uniform(0.15, 0.3) * room + 5
    center = rng.uniform(-0.25, 0.25, 2) * (room - radius)
    bones = [(center, radius)]
    if rng.random() < 0.4:  # forearm or lower leg
        second = rng.uniform(0.5, 0.8) * radius
        angle = rng.uniform(0, 2 * math.pi)
        bones.append(
            (
                center
                + (radius + second + rng.uniform(3, 15)) * np.array([math.sin(angle), math.cos(angle)]),
                second,
            )
        )
    parts = []
    for (y, x), r in bones:
        cortex = min(rng.uniform(2.5, 6.0), 0.5 * r)
        parts += [
            Ellipse("cortical_bone", (y, x), (r, r)),
            Ellipse("marrow", (y, x), (r - cortex, r - cortex)),
        ]
    for _ in range(int(rng.integers(1, 4))):
        angle, r = rng.uniform(0, 2 * math.pi), rng.uniform(2, 5)
        y, x = center + (radius + rng.uniform(6, 20)) * np.array([math.sin(angle), math.cos(angle)])
        parts.append(Ellipse("blood", (y, x), (r, r)))
    return Body(
        layout="limb",
        outline=Ellipse("fat", (0.0, 0.0), (float(semi_y), float(semi_x))),
        length_mm=float(2 * semi_x * rng.uniform(1.2, 2.5)),
        fat_mm=float(fat),
        wall_mm=0.0,
        interior=("muscle",) * int(rng.integers(3, 8)),
        interior_sigma_mm=float(rng.uniform(10, 25)),
        elongation=4.0,
        septa=tuple(
            ("fat", float(rng.uniform(8, 20)), float(rng.uniform(0.5, 2.0)))
            for _ in range(int(rng.integers(1, 3)))
        ),
        parts=tuple(parts),
    )


def _jitter(rng: np.random.Generator, semi_yx: tuple[float, float]) -> tuple[float, float]:
    """Semi-axes scaled by 0.8..1.2 each: organs vary in size between people."""
    return (semi_yx[0] * rng.uniform(0.8, 1.2), semi_yx[1] * rng.uniform(0.8, 1.2))
