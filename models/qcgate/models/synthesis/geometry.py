"""Where the scanner looks: slice orientation, field of view, matrix, slice thickness, deformation.

A synthetic image is the object sampled on a random scanner grid. The grid is chosen the way a
radiographer would (field of view fitted to the object, a clinical matrix, rectangular field of view
along the phase axis), at native resolution: never resampled to a fixed size, because resizing is a
low-pass filter that erases the very blur and undersampling the metrics must see. The object is
rotated, scaled, sheared and elastically deformed, so no two images share a pose or a shape, and a
thick slice averages several sub-slices, as the slice profile of a real acquisition does.

Frames: the object lives in millimetres (z, y, x) = (superior, anterior, right). Images are shown
radiologically: rows run down the displayed image, columns to its right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qcgate.models.synthesis.anatomy import Vector3
from qcgate.models.synthesis.config import SynthesisConfig, choose
from qcgate.models.synthesis.fields import Canvas

__all__ = ["Geometry", "sample_geometry"]

# Directions of image rows (downwards), columns (rightwards) and slices in the object frame.
_PLANES: dict[str, np.ndarray] = {
    "axial": np.array([(0, -1, 0), (0, 0, -1), (1, 0, 0)], dtype=np.float32),  # anterior up, right left
    "coronal": np.array([(-1, 0, 0), (0, 0, -1), (0, -1, 0)], dtype=np.float32),  # superior up
    "sagittal": np.array([(-1, 0, 0), (0, -1, 0), (0, 0, -1)], dtype=np.float32),  # anterior left
}


@dataclass(frozen=True)
class Geometry:
    """A sampling grid and the transform from its millimetres to the object's."""

    shape: tuple[int, ...]  # (R, C) or (S, R, C)
    spacing_mm: tuple[float, ...]
    thickness_mm: float
    orientation: str
    directions: np.ndarray  # (3, 3): row, column and slice unit vectors in the scanner frame
    linear: np.ndarray  # (3, 3): rotation, scale and shear, scanner frame to object frame
    center_mm: np.ndarray  # (3,): object-frame point at the grid's centre
    elastic_mm: float
    elastic_sigma_mm: float
    subslices: int

    def points(self, canvas: Canvas) -> np.ndarray:
        """Object-frame millimetres of every sample, float32 (3, subslices, *shape).

        Axis 1 holds the sub-slices across the slice thickness; the caller averages over it.
        """
        ndim = len(self.shape)
        offsets = (np.arange(self.subslices, dtype=np.float32) + 0.5) / self.subslices - 0.5
        axes: list[np.ndarray] = [offsets * np.float32(self.thickness_mm)]  # sub-slices along the normal
        row, column, normal = self.directions
        directions = [normal, *([normal] if ndim == 3 else []), row, column]
        for n, spacing in zip(self.shape, self.spacing_mm, strict=True):
            axes.append((np.arange(n, dtype=np.float32) - (n - 1) / 2) * np.float32(spacing))
        shaped = [a.reshape([-1 if i == k else 1 for i in range(ndim + 1)]) for k, a in enumerate(axes)]
        mapped = [self.linear @ direction for direction in directions]  # each axis's step in the object
        displacement = [canvas.field(self.elastic_sigma_mm) for _ in range(3)]
        return np.stack(
            [
                sum(a * np.float32(m[i]) for a, m in zip(shaped, mapped, strict=True))
                + np.float32(self.center_mm[i])
                + np.float32(self.elastic_mm / 2) * displacement[i]
                for i in range(3)
            ]
        ).astype(np.float32)

    def z_alignment(self) -> tuple[float, ...]:
        """Per grid axis, the |cosine| between its direction in the object and the object's z axis."""
        row, column, normal = (self.linear @ d for d in self.directions)
        axes = [normal, row, column] if len(self.shape) == 3 else [row, column]
        return tuple(float(abs(a[0]) / np.linalg.norm(a)) for a in axes)

    def record(self) -> dict[str, object]:
        """The geometry's part of an image's provenance."""
        return {
            "orientation": self.orientation,
            "matrix": list(self.shape),
            "spacing_mm": [round(s, 4) for s in self.spacing_mm],
            "fov_mm": [round(n * s, 2) for n, s in zip(self.shape, self.spacing_mm, strict=True)],
            "thickness_mm": round(self.thickness_mm, 3),
            "subslices": self.subslices,
            "elastic_mm": round(self.elastic_mm, 3),
        }


def sample_geometry(
    extent_mm: Vector3,
    config: SynthesisConfig,
    rng: np.random.Generator,
    volume: bool,
    volume_shape: tuple[int, int, int] | None = None,
) -> Geometry:
    """A random grid and pose for an object of ``extent_mm``: a slice, or a volume if ``volume``.

    ``volume_shape`` fixes a volume's (S, R, C); the in-plane spacing still fits the object, clipped
    to ``config.pixel_mm``, so a small shape is a native-resolution crop, not a shrunken object.
    """
    if volume_shape is not None and not volume:
        raise ValueError('Argument "volume_shape" is only for volumes (volume=True).')
    orientation = choose(config.orientation_weights, rng)
    directions = _PLANES[orientation].copy()
    for axis in (0, 1):
        if rng.random() < config.flip_probability:
            directions[axis] *= -1
    extent = np.abs(directions) @ np.asarray(extent_mm, dtype=np.float32)  # along row, column, slice
    linear = _random_linear(config, rng)

    matrix_range = config.volume_matrix if volume else config.matrix
    longer = int(np.argmax(extent[:2]))
    fov = float(extent[longer] * rng.uniform(*config.fov_margin))
    in_plane = [0, 0]
    in_plane[longer] = int(rng.integers(matrix_range[0], matrix_range[1] + 1))
    in_plane[1 - longer] = int(
        np.clip(round(in_plane[longer] * rng.uniform(*config.phase_fov)), *matrix_range)
    )
    if volume_shape is not None:
        in_plane = list(volume_shape[1:])
    pixel = float(np.clip(fov / in_plane[longer], *config.pixel_mm))

    if volume:
        thickness = float(rng.uniform(*config.volume_thickness_mm))
        slices = (
            volume_shape[0]
            if volume_shape
            else int(rng.integers(config.volume_slices[0], config.volume_slices[1] + 1))
        )
        shape: tuple[int, ...] = (slices, *in_plane)
        spacing: tuple[float, ...] = (thickness, pixel, pixel)
    else:
        thickness = float(rng.uniform(*config.slice_thickness_mm))
        shape, spacing = tuple(in_plane), (pixel, pixel)
    subslices = int(np.clip(round(thickness / config.subslice_mm), 1, config.max_subslices))

    center = directions[2] * np.float32(rng.uniform(-1, 1) * config.slice_position * extent[2] / 2)
    center += directions[0] * np.float32(rng.uniform(-0.05, 0.05) * fov)
    center += directions[1] * np.float32(rng.uniform(-0.05, 0.05) * fov)
    return Geometry(
        shape=shape,
        spacing_mm=spacing,
        thickness_mm=thickness,
        orientation=orientation,
        directions=directions,
        linear=linear,
        center_mm=center,
        elastic_mm=float(rng.uniform(0.0, config.elastic_mm)),
        elastic_sigma_mm=config.elastic_sigma_mm,
        subslices=subslices,
    )


def _random_linear(config: SynthesisConfig, rng: np.random.Generator) -> np.ndarray:
    """Rotation about a random axis by up to ``rotation_deg``, times random scale and shear."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.uniform(-config.rotation_deg, config.rotation_deg))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross  # Rodrigues
    shear = np.eye(3) + np.triu(rng.uniform(-config.shear, config.shear, (3, 3)), k=1)
    scale = np.diag(rng.uniform(*config.scale, 3))
    return (rotation @ scale @ shear).astype(np.float32)
