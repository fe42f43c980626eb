"""The 3D MR Shepp-Logan phantom of phantominator (Gach et al. 2008), for geometric variety.

phantominator publishes the phantom as a table of ellipsoids, each with its tissue's relaxation model.
Rasterising that table through :func:`phantominator.shepp_logan` would fix the resolution and cost a
full 3D grid per image; instead the ellipsoids are drawn here analytically at the sample points (soft
one-pixel edges at any resolution and under any deformation), with the tissues mapped onto
:data:`qcgate.models.synthesis.tissues.TISSUES` so contrast follows the same table as every other source.
Painting the positive ellipsoids in order reproduces phantominator's add-and-subtract construction.
Centres and sizes are jittered, so each phantom differs a little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from phantominator import mr_ellipsoid_parameters

from qcgate.models.synthesis.anatomy import Compartment, Composition, Vector3, ellipsoid_distance, ramp
from qcgate.models.synthesis.fields import Canvas

__all__ = ["SheppLogan", "phantominator_tissue", "sample_shepp_logan"]

# phantominator's relaxation models (T2 in s, A of T1 = A B0^C or None for an explicit T1) -> tissue.
_PHANTOMINATOR_TISSUES = {
    (0.07, 0.324): "fat",  # "scalp"
    (0.05, 0.533): "marrow",
    (1.99, None): "csf",
    (0.1, 0.857): "gm",
    (0.08, 0.583): "wm",
    (0.1, 0.926): "lesion",  # "tumor"
    (0.2, 1.35): "blood",  # "blood-clot"
}

_SHELLS = 4  # leading ellipsoids that nest as thin shells
Ellipsoid = tuple[str, Vector3, Vector3, float]  # tissue, centre (z, y, x) mm, semi-axes mm, angle rad


def phantominator_tissue(row: np.ndarray) -> str:
    """Our tissue for one row of :func:`phantominator.mr_ellipsoid_parameters`."""
    a, t2 = row[8], row[11]
    key = (round(float(t2), 3), None if math.isnan(a) else round(float(a), 3))
    if key not in _PHANTOMINATOR_TISSUES:
        raise LookupError(f"phantominator ellipsoid with T2 {t2} s and T1 model A={a} has no known tissue")
    return _PHANTOMINATOR_TISSUES[key]


@dataclass(frozen=True)
class SheppLogan:
    """The phantom's ellipsoids, in millimetres, painted in phantominator's order."""

    ellipsoids: tuple[Ellipsoid, ...]

    @property
    def extent_mm(self) -> Vector3:
        semi = self.ellipsoids[0][2]  # the outermost ("scalp") ellipsoid
        return (2 * semi[0], 2 * semi[1], 2 * semi[2])

    def render(self, points: np.ndarray, canvas: Canvas) -> list[Compartment]:
        phantom = Composition()
        for tissue, center, semi, angle in self.ellipsoids:
            phantom.paint(tissue, ramp(ellipsoid_distance(points, center, semi, angle), canvas.edge_mm))
        return phantom.compartments()


def sample_shepp_logan(rng: np.random.Generator) -> SheppLogan:
    """The phantom scaled to a head 180 to 260 mm long; inner structures moved and resized a little.

    The first four ellipsoids are nested shells (scalp, marrow, CSF, grey matter) only a few percent
    apart, so they keep their proportions; jittering them would break the skull.
    """
    half_size = rng.uniform(90, 130)  # mm per phantom unit
    ellipsoids = []
    for index, row in enumerate(np.asarray(mr_ellipsoid_parameters())):
        if row[7] <= 0:  # negative spin density: phantominator's subtraction, which painting replaces
            continue
        x, y, z, a, b, c, angle = row[:7]
        inner = index >= _SHELLS
        scale = half_size * (rng.uniform(0.9, 1.1, 3) if inner else np.ones(3))
        shift = half_size * (rng.normal(0, 0.02, 3) if inner else np.zeros(3))
        center = np.array([z, y, x]) * half_size + shift
        semi = np.array([c, b, a]) * scale
        ellipsoids.append(
            (
                phantominator_tissue(row),
                (float(center[0]), float(center[1]), float(center[2])),
                (float(semi[0]), float(semi[1]), float(semi[2])),
                float(angle),
            )
        )
    return SheppLogan(tuple(ellipsoids))
