"""What an anatomy source hands to the scanner model: tissue compartments with partial-volume weights.

Every source (MNI head, random label maps, body, Shepp-Logan) is an object that knows its size and
renders itself at given points as a list of :class:`Compartment`: a tissue name and the fraction of
each voxel it fills. The scanner model turns tissues into signal, so sources never think about
contrast. Voxels where the weights sum to less than one hold air.

Boundaries are soft over one pixel (:func:`ramp`), which is what partial volume does on a real
scanner; hard 0/1 labels sampled at pixel centres would give staircase edges no scanner makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from qcgate.models.synthesis.fields import Canvas

__all__ = ["Anatomy", "Compartment", "Composition", "ellipsoid_distance", "ramp"]

Vector3 = tuple[float, float, float]


@dataclass
class Compartment:
    """One tissue's share of each voxel; ``jitter`` widens its own relaxation spread (label maps)."""

    tissue: str
    weight: np.ndarray  # float32, broadcastable to the rendered points' shape
    jitter: float = 0.0


class Anatomy(Protocol):
    """An object in its own frame: millimetres, axes (z, y, x) = (superior, anterior, right), centred.

    Anatomies are dataclasses: their fields say everything random about them and go into provenance.
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def extent_mm(self) -> Vector3:
        """Size of the object's bounding box along (z, y, x)."""
        ...

    def render(self, points: np.ndarray, canvas: Canvas) -> list[Compartment]:
        """Tissue compartments at ``points`` (3, ...), in millimetres in the object's frame."""
        ...


@dataclass
class Composition:
    """Layers painted back to front: each covers what lies beneath by its weight.

    Weights are resolved once, front to back, in :meth:`compartments`: a layer keeps its weight times
    the fraction that the layers above it leave visible. Linear in the number of layers, where
    repainting everything beneath at each step would be quadratic.
    """

    layers: list[tuple[list[tuple[str, np.ndarray]], float]] = field(default_factory=list)

    def paint(self, tissue: str, weight: np.ndarray, jitter: float = 0.0) -> None:
        """Cover everything so far by ``weight`` (0..1) of ``tissue``."""
        self.paint_mixture([(tissue, weight)], jitter)

    def paint_mixture(self, parts: Sequence[tuple[str, np.ndarray]], jitter: float = 0.0) -> None:
        """Cover everything so far by several tissues at once; their weights must sum to at most 1."""
        self.layers.append((list(parts), jitter))

    def compartments(self) -> list[Compartment]:
        """The visible share of every painted tissue, bottom layer first."""
        visible: np.ndarray | float = 1.0
        resolved: list[Compartment] = []
        for parts, jitter in reversed(self.layers):
            resolved += [Compartment(tissue, weight * visible, jitter) for tissue, weight in parts]
            visible = visible * (1.0 - sum(weight for _, weight in parts))
        return resolved[::-1]


def ramp(distance_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """Inside fraction of a voxel at signed distance ``distance_mm`` (negative inside) from a border."""
    return np.clip(0.5 - distance_mm / np.float32(edge_mm), 0.0, 1.0).astype(np.float32)


def ellipsoid_distance(
    points: np.ndarray, center: Vector3, semi_axes: Vector3, angle_rad: float = 0.0
) -> np.ndarray:
    """Approximate signed distance in mm (negative inside) from ``points`` to an ellipsoid.

    The ellipsoid's axes are (z, y, x), turned by ``angle_rad`` about z; a semi-axis of ``inf``
    makes it a cylinder. First-order distance ``(q - 1) / |grad q|`` with ``q`` the normalised
    radius: exact on the surface, which is all that soft edges need, and finite at the centre.
    """
    if angle_rad and not (np.isfinite(semi_axes[1]) and np.isfinite(semi_axes[2])):
        raise ValueError('Argument "angle_rad" needs finite y and x semi-axes to turn about z.')
    axes = [axis for axis in range(3) if np.isfinite(semi_axes[axis])]
    offsets = {axis: points[axis] - np.float32(center[axis]) for axis in axes}
    if angle_rad:
        cos, sin = np.float32(np.cos(angle_rad)), np.float32(np.sin(angle_rad))
        offsets[1], offsets[2] = cos * offsets[1] - sin * offsets[2], sin * offsets[1] + cos * offsets[2]
    scaled = [offsets[axis] / np.float32(semi_axes[axis]) for axis in axes]
    q = np.sqrt(sum(s * s for s in scaled))
    slope = np.sqrt(sum((s / np.float32(semi_axes[axis])) ** 2 for s, axis in zip(scaled, axes, strict=True)))
    return ((q - 1.0) * q / (slope + np.float32(1e-6))).astype(np.float32)
