"""Per-frame pixels and plane geometry of MR instances, classic or Enhanced (multi-frame).

Classic MR Image Storage keeps one frame's geometry in its top-level header; Enhanced MR keeps it in
functional groups, per frame or shared by all frames. :func:`frames_of` reads either into the same
:class:`Frame`, so the stacking code in :mod:`qcgate.imaging.volume` never asks which kind it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import Dataset

from qcgate.core.errors import NotAssessable
from qcgate.imaging.acquisition import acquired_share

# InPlanePhaseEncodingDirection names the in-plane direction along which phase was encoded:
# along a row ("ROW") the index that varies is the column, axis 2 of a (slices, rows, cols) stack.
_PHASE_AXIS = {"ROW": 2, "COL": 1}

# A plane within this angle of a patient axis is named after it; anything further is "oblique".
# 30 degrees keeps the usual AC-PC angulated axials "axial" and calls genuinely tilted planes oblique.
_NAMED_PLANE_MIN_COSINE = math.cos(math.radians(30.0))
_PLANE_NAMES = ("sagittal", "coronal", "axial")  # slice normal mostly along x (L-R), y (A-P), z (S-I)


@dataclass(frozen=True, eq=False)
class Placement:
    """Where a frame lies in the patient coordinate system (PS3.3 C.7.6.2)."""

    orientation: np.ndarray  # (6,) ImageOrientationPatient: row then column direction cosines
    position: np.ndarray  # (3,) ImagePositionPatient: centre of the first voxel, mm


@dataclass(frozen=True, eq=False)
class Frame:
    """One 2D image of a series with everything needed to place it in a stack.

    Optional fields are None where the header does not say (or says something malformed).
    """

    pixels: np.ndarray  # (R, C) stored values, rescale not yet applied
    sop_instance_uid: str
    placement: Placement | None  # None unless both orientation and position are known
    pixel_spacing: tuple[float, float] | None  # (row, column) mm
    slice_thickness: float | None
    spacing_between_slices: float | None
    slope: float
    intercept: float
    temporal_index: int | None
    phase_encode_axis: int | None
    # What the scanner console calls this image: InstanceNumber for a classic instance, the 1-based
    # frame number for a frame of a multi-frame (Enhanced) instance; None when the header has neither.
    slice_number: int | None = None
    # The share of the displayed k-space the scanner acquired along (rows' axis, columns' axis), from
    # the header (qcgate.imaging.acquisition); None when the header does not say.
    acquired_share: tuple[float, float] | None = None


def frames_of(ds: Dataset) -> list[Frame]:
    """Split one instance into its frames, each with its own header values resolved.

    Values are looked up in the frame's per-frame functional groups, then the shared ones (PS3.3
    C.7.6.16 puts each macro in one or the other), then the top-level header, where classic images
    keep them and some converters leave them for Enhanced ones too.
    """
    samples = int(ds.get("SamplesPerPixel") or 1)
    if samples != 1:
        raise NotAssessable(
            f"instance {ds.get('SOPInstanceUID', '?')} is a colour image (SamplesPerPixel={samples}); "
            "only greyscale MR can be scored"
        )
    if "PixelData" not in ds:
        raise NotAssessable(f"instance {ds.get('SOPInstanceUID', '?')} has no Pixel Data")
    rows, cols = int(ds.Rows), int(ds.Columns)
    pixels = ds.pixel_array.reshape(-1, rows, cols)  # (F, R, C)
    per_frame: Sequence[Dataset] = ds.get("PerFrameFunctionalGroupsSequence") or ()
    shared: Sequence[Dataset] = ds.get("SharedFunctionalGroupsSequence") or ()
    shared_items = _macro_items(shared[0]) if shared else []
    instance_number = _optional_int(ds.get("InstanceNumber"))
    multi_frame = pixels.shape[0] > 1
    return [
        _frame(
            pixels[index],
            str(ds.SOPInstanceUID),
            (_macro_items(per_frame[index]) if index < len(per_frame) else []) + shared_items + [ds],
            index + 1 if multi_frame else instance_number,
        )
        for index in range(pixels.shape[0])
    ]


def plane_name(orientation: np.ndarray) -> str:
    """Name the plane ("axial", "sagittal", "coronal" or "oblique") from its direction cosines."""
    normal = np.abs(slice_normal(orientation))
    dominant = int(np.argmax(normal))
    return _PLANE_NAMES[dominant] if normal[dominant] >= _NAMED_PLANE_MIN_COSINE else "oblique"


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit normal of the image plane: row direction cross column direction (PS3.3 C.7.6.2.1.1)."""
    normal = np.cross(orientation[:3], orientation[3:])
    length = float(np.linalg.norm(normal))
    if length == 0.0:
        raise NotAssessable("ImageOrientationPatient has parallel row and column directions")
    return normal / length


def _macro_items(group: Dataset) -> list[Dataset]:
    """The items of a functional group's macros, e.g. the Plane Position item of one frame."""
    return [item for element in group if element.VR == "SQ" for item in element.value]


def _first(sources: Sequence[Dataset], keyword: str) -> Any:
    """The first non-empty value of ``keyword`` among ``sources``, or None."""
    for source in sources:
        value = source.get(keyword)
        if value is not None and value != "" and value != []:
            return value
    return None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    """An integer header value, or None when absent or malformed (IS values can be anything on the wire)."""
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _vector(value: Any, length: int) -> np.ndarray | None:
    """The value as a float vector, or None when absent or of the wrong length (malformed header)."""
    if value is None or len(value) != length:
        return None
    return np.asarray(value, dtype=float)


def _frame(
    pixels: np.ndarray, sop_instance_uid: str, sources: Sequence[Dataset], slice_number: int | None
) -> Frame:
    orientation = _vector(_first(sources, "ImageOrientationPatient"), 6)
    position = _vector(_first(sources, "ImagePositionPatient"), 3)
    spacing = _vector(_first(sources, "PixelSpacing"), 2)
    slope = _first(sources, "RescaleSlope")
    intercept = _first(sources, "RescaleIntercept")
    temporal = _first(sources, "TemporalPositionIndex")
    if temporal is None:
        temporal = _first(sources, "TemporalPositionIdentifier")
    phase = _first(sources, "InPlanePhaseEncodingDirection")
    phase_axis = _PHASE_AXIS.get(str(phase).upper()) if phase is not None else None
    pixel_spacing = None if spacing is None else (float(spacing[0]), float(spacing[1]))
    return Frame(
        pixels=pixels,
        sop_instance_uid=sop_instance_uid,
        placement=None if orientation is None or position is None else Placement(orientation, position),
        pixel_spacing=pixel_spacing,
        slice_thickness=_optional_float(_first(sources, "SliceThickness")),
        spacing_between_slices=_optional_float(_first(sources, "SpacingBetweenSlices")),
        slope=1.0 if slope is None else float(slope),
        intercept=0.0 if intercept is None else float(intercept),
        temporal_index=None if temporal is None else int(temporal),
        phase_encode_axis=phase_axis,
        slice_number=slice_number,
        acquired_share=acquired_share(
            lambda keyword: _first(sources, keyword), pixels.shape, pixel_spacing, phase_axis
        ),
    )
