"""Head anatomy from the MNI152 template that nilearn ships: grey and white matter, CSF, skull, scalp.

Real brain shapes (gyri, ventricles, deep grey matter) from nilearn's 1 mm ICBM152 2009 grey- and
white-matter probability maps, read from files inside the package (never the network). The template
is skull-stripped, so the head around the brain is built here from the distance to the brain's
closed envelope: subarachnoid CSF, the skull's inner table, diploe (marrow) and outer table, then
galea (muscle), subcutaneous fat and skin, each layer of random thickness. CSF is what lies inside
the envelope and is neither grey nor white matter: sulci and ventricles.

The template is a population average, smoother than any scan; :mod:`qcgate.models.synthesis.label_maps`
exists to teach the metrics what sharp anatomy looks like. Loading costs about two seconds, once per
process (:func:`mni_maps` is cached).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qcgate.models.synthesis.anatomy import Compartment, Composition, Vector3, ramp
from qcgate.models.synthesis.fields import Canvas

__all__ = ["MniHead", "MniMaps", "mni_maps", "sample_mni_head"]

_BRAIN_THRESHOLD = 0.2  # nilearn's own brain-mask threshold on the rescaled T1 template
_DISTANCE_STEP_MM = 2.0  # the envelope distance is smooth: a 2 mm grid is accurate and 8x smaller
_PAD_MM = 40  # room around the brain for skull and scalp
_CLOSING_MM = 6  # closes sulci, so the envelope hugs the gyral crowns as the arachnoid does
_HEAD_MARGIN_MM = 18.0  # skull and scalp beyond the envelope, for the head's bounding box


@dataclass(frozen=True)
class MniMaps:
    """The template's tissue maps in the object frame's axis order (z, y, x)."""

    grey: np.ndarray  # uint8 probability x 255, 1 mm voxels
    white: np.ndarray  # uint8 probability x 255, 1 mm voxels
    envelope_mm: np.ndarray  # float32 signed distance to the brain envelope, negative inside, 2 mm voxels
    grey_origin_mm: np.ndarray  # (3,) object-frame position of grey[0, 0, 0]
    envelope_origin_mm: np.ndarray  # (3,) object-frame position of envelope_mm[0, 0, 0]
    extent_mm: Vector3


@functools.cache
def mni_maps() -> MniMaps:
    """Load nilearn's packaged MNI152 maps once and derive the brain envelope's distance map."""
    from nilearn.datasets import (  # deferred: nilearn takes a second to import
        load_mni152_gm_template,
        load_mni152_template,
        load_mni152_wm_template,
    )

    images = [
        load(resolution=1)
        for load in (load_mni152_template, load_mni152_gm_template, load_mni152_wm_template)
    ]
    t1, grey, white = (np.asarray(image.get_fdata(dtype=np.float32)).transpose(2, 1, 0) for image in images)
    origin = images[0].affine[:3, 3][::-1].astype(np.float32)  # (z, y, x) mm of voxel 0; 1 mm, no rotation

    step = int(_DISTANCE_STEP_MM)
    pad = _PAD_MM // step
    brain = t1[::step, ::step, ::step] > _BRAIN_THRESHOLD
    brain = np.pad(brain, pad)
    ball = ndimage.iterate_structure(ndimage.generate_binary_structure(3, 1), _CLOSING_MM // step)
    envelope = ndimage.binary_fill_holes(ndimage.binary_closing(brain, ball, border_value=0))
    distance = _DISTANCE_STEP_MM * (
        ndimage.distance_transform_edt(~envelope) - ndimage.distance_transform_edt(envelope)
    )

    envelope_origin = origin - pad * _DISTANCE_STEP_MM
    inside = np.argwhere(distance < _HEAD_MARGIN_MM)
    low = envelope_origin + inside.min(axis=0) * _DISTANCE_STEP_MM
    high = envelope_origin + inside.max(axis=0) * _DISTANCE_STEP_MM
    center = (low + high) / 2
    return MniMaps(
        grey=_to_byte(grey),
        white=_to_byte(white),
        envelope_mm=distance.astype(np.float32),
        grey_origin_mm=(origin - center).astype(np.float32),
        envelope_origin_mm=(envelope_origin - center).astype(np.float32),
        extent_mm=(float(high[0] - low[0]), float(high[1] - low[1]), float(high[2] - low[2])),
    )


def _to_byte(probability: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.round(np.clip(probability, 0, 1) * 255).astype(np.uint8))


@dataclass(frozen=True)
class MniHead:
    """The MNI brain in a head whose layers have these thicknesses (mm), innermost first."""

    csf_rim_mm: float
    inner_table_mm: float
    diploe_mm: float
    outer_table_mm: float
    galea_mm: float
    scalp_fat_mm: float
    skin_mm: float

    @property
    def extent_mm(self) -> Vector3:
        return mni_maps().extent_mm

    def render(self, points: np.ndarray, canvas: Canvas) -> list[Compartment]:
        maps = mni_maps()
        flat = points.reshape(3, -1)
        grey = _sample(maps.grey, flat, maps.grey_origin_mm, 1.0) / np.float32(255)
        white = _sample(maps.white, flat, maps.grey_origin_mm, 1.0) / np.float32(255)
        distance = _sample(maps.envelope_mm, flat, maps.envelope_origin_mm, _DISTANCE_STEP_MM)
        grey, white, distance = (a.reshape(points.shape[1:]) for a in (grey, white, distance))

        borders = np.cumsum(
            [
                self.csf_rim_mm,
                self.inner_table_mm,
                self.diploe_mm,
                self.outer_table_mm,
                self.galea_mm,
                self.scalp_fat_mm,
                self.skin_mm,
            ]
        )
        head = Composition()
        layers = ("muscle", "fat", "muscle", "cortical_bone", "marrow", "cortical_bone")  # skin inwards
        for tissue, border in zip(layers, borders[:0:-1], strict=True):
            head.paint(tissue, ramp(distance - np.float32(border), canvas.edge_mm))
        inside = ramp(distance - np.float32(borders[0]), canvas.edge_mm)
        white = np.minimum(white, inside)
        grey = np.minimum(grey, inside - white)
        head.paint_mixture([("csf", inside - grey - white), ("gm", grey), ("wm", white)])
        return head.compartments()


def _sample(volume: np.ndarray, points_mm: np.ndarray, origin_mm: np.ndarray, step_mm: float) -> np.ndarray:
    """Trilinear samples of ``volume`` at object-frame millimetres; outside the volume: its edge value."""
    coordinates = (points_mm - origin_mm[:, None]) / np.float32(step_mm)
    return ndimage.map_coordinates(
        volume, coordinates, order=1, output=np.float32, mode="nearest", prefilter=False
    )


def sample_mni_head(rng: np.random.Generator) -> MniHead:
    """An MNI head with adult-typical, random layer thicknesses."""
    return MniHead(
        csf_rim_mm=float(rng.uniform(0.5, 2.5)),
        inner_table_mm=float(rng.uniform(1.0, 2.0)),
        diploe_mm=float(rng.uniform(1.5, 5.0)),
        outer_table_mm=float(rng.uniform(1.0, 2.0)),
        galea_mm=float(rng.uniform(1.0, 3.0)),
        scalp_fat_mm=float(rng.uniform(2.0, 6.0)),
        skin_mm=float(rng.uniform(1.0, 2.0)),
    )
