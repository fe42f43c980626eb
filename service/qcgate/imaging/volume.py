"""Turn a series' DICOM instances into 3D stacks ready for scoring.

A series is not always one volume, so :func:`build_stacks` splits it:

* by plane: slices are grouped by orientation (direction cosines equal within a tolerance) and by
  matrix size, so a 3-plane localizer yields one stack per plane, labelled "axial", "sagittal",
  "coronal" or "oblique";
* by volume: a 4D series (dynamic, multi-echo, fMRI: several frames at one slice position, told apart
  by TemporalPositionIdentifier / TemporalPositionIndex or simply by positions that repeat) yields one
  stack per volume, labelled e.g. "axial t=3". **4D series are assessed per volume**: every metric
  sees one 3D volume at a time, never the time series.

Within a stack, slices are sorted along the slice normal (row cosine x column cosine) by the
projection of ImagePositionPatient onto it. InstanceNumber order (then frame order within an
instance) is only used when the header carries no geometry, and the stack's label then says so.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydicom import Dataset

from qcgate.core.errors import NotAssessable
from qcgate.imaging.geometry import Frame, frames_of, plane_name, slice_normal

_ORIENTATION_TOLERANCE = 1e-3  # direction cosines closer than this (about 0.06 degrees) are one plane
_POSITION_TOLERANCE_MM = 0.01  # slice positions closer than this along the normal are one slice


@dataclass(frozen=True)
class Stack:
    """One geometrically consistent 3D volume of a series.

    ``voxels`` is float32 with shape (slices, rows, cols), rescale slope/intercept applied and
    slices sorted along the slice normal. ``phase_encode_axis`` is the voxel axis (1 = rows,
    2 = columns) along which the phase was encoded, or None when the header does not say (or its
    slices disagree). ``label`` names the plane and, for 4D series, the volume ("axial t=3"); it
    ends with a parenthesised note when slices had to be ordered without geometry or when 1 mm
    was assumed for a spacing the header does not give.
    """

    voxels: np.ndarray  # (S, R, C) float32
    spacing_mm: tuple[float, float, float]  # (slice, row, column)
    phase_encode_axis: int | None
    sop_instance_uids: tuple[str, ...]  # one per slice, in voxel order
    label: str
    # One per slice, in voxel order: what the console calls it (InstanceNumber, or the frame number
    # in a multi-frame instance); empty when unknown, and then slices are named by position from 1.
    slice_numbers: tuple[int, ...] = ()
    # The share of the displayed k-space acquired along (rows' axis, columns' axis), where the header
    # says and every slice agrees (qcgate.imaging.acquisition); the verdict reads the stack at that
    # resolution.
    acquired_share: tuple[float, float] | None = None

    def slice_number(self, index: int) -> int:
        """The console's name of voxel slice ``index``: InstanceNumber (or frame number), else index + 1."""
        if len(self.slice_numbers) == self.voxels.shape[0]:
            return self.slice_numbers[index]
        return index + 1


@dataclass
class _Plane:
    """Frames sharing one orientation and matrix size, in acquisition order."""

    shape: tuple[int, int]
    orientation: np.ndarray | None  # None: the frames carry no geometry
    frames: list[Frame] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)  # along the normal, mm; empty without geometry

    def accepts(self, frame: Frame) -> bool:
        if frame.pixels.shape != self.shape:
            return False
        if self.orientation is None or frame.placement is None:
            return self.orientation is None and frame.placement is None
        return bool(np.max(np.abs(frame.placement.orientation - self.orientation)) <= _ORIENTATION_TOLERANCE)

    def add(self, frame: Frame) -> None:
        self.frames.append(frame)
        if self.orientation is not None and frame.placement is not None:
            self.distances.append(float(frame.placement.position @ slice_normal(self.orientation)))


def build_stacks(datasets: Sequence[Dataset]) -> list[Stack]:
    """Split one series into stacks, one per plane, matrix size and (for 4D series) volume.

    Stacks come in acquisition order of their first slice. Raises :class:`NotAssessable` when the
    series is empty or holds colour images or instances without pixel data.
    """
    if not datasets:
        raise NotAssessable("the series has no instances")
    # A stable sort: instances without InstanceNumber keep the order they arrived in.
    ordered = sorted(datasets, key=lambda ds: int(ds.get("InstanceNumber") or 0))
    planes = _group_planes([frame for ds in ordered for frame in frames_of(ds)])
    stacks = []
    for plane, name in zip(planes, _plane_names(planes), strict=True):
        volumes = _split_volumes(plane)
        for number, indices in enumerate(volumes, start=1):
            stacks.append(_stack(plane, indices, name if len(volumes) == 1 else f"{name} t={number}"))
    return stacks


def _group_planes(frames: Sequence[Frame]) -> list[_Plane]:
    planes: list[_Plane] = []
    for frame in frames:
        plane = next((plane for plane in planes if plane.accepts(frame)), None)
        if plane is None:
            orientation = None if frame.placement is None else frame.placement.orientation
            plane = _Plane(shape=frame.pixels.shape, orientation=orientation)
            planes.append(plane)
        plane.add(frame)
    return planes


def _plane_names(planes: Sequence[_Plane]) -> list[str]:
    """Plane names, numbered ("axial #2") where several stacks would share one."""
    names = [
        "unknown orientation" if plane.orientation is None else plane_name(plane.orientation)
        for plane in planes
    ]
    counts = Counter(names)
    seen: Counter[str] = Counter()
    numbered = []
    for name in names:
        seen[name] += 1
        numbered.append(f"{name} #{seen[name]}" if counts[name] > 1 else name)
    return numbered


def _split_volumes(plane: _Plane) -> list[list[int]]:
    """Indices into ``plane.frames`` of each volume, sorted along the normal where known.

    A frame belongs to volume (temporal index, n) when it is the n-th frame acquired at its slice
    position with that temporal index, so repeated positions split a series even when no
    temporal attribute is present. Without geometry, repeats cannot be seen and every frame is
    its own position.
    """
    if plane.orientation is None:
        positions = list(range(len(plane.frames)))
    else:
        positions = _position_ids(plane.distances)
    repeats: Counter[tuple[int, int]] = Counter()
    volumes: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
    for index, (frame, position) in enumerate(zip(plane.frames, positions, strict=True)):
        temporal = frame.temporal_index or 0
        volumes[temporal, repeats[temporal, position]].append(index)
        repeats[temporal, position] += 1
    ordered = [volumes[key] for key in sorted(volumes)]
    if plane.orientation is None:
        return ordered
    return [sorted(indices, key=plane.distances.__getitem__) for indices in ordered]


def _position_ids(distances: Sequence[float]) -> list[int]:
    """Number slice positions, merging distances within the position tolerance."""
    order = np.argsort(distances, kind="stable")
    gaps = np.diff(np.asarray(distances)[order]) > _POSITION_TOLERANCE_MM
    ids = np.empty(len(distances), dtype=int)
    ids[order] = np.concatenate(([0], np.cumsum(gaps)))
    return ids.tolist()


def _stack(plane: _Plane, indices: Sequence[int], label: str) -> Stack:
    frames = [plane.frames[index] for index in indices]
    voxels = np.stack([frame.pixels for frame in frames]).astype(np.float32)  # (S, R, C)
    slopes = np.array([frame.slope for frame in frames], dtype=np.float32)
    intercepts = np.array([frame.intercept for frame in frames], dtype=np.float32)
    voxels *= slopes[:, None, None]
    voxels += intercepts[:, None, None]
    slice_spacing = _slice_spacing(plane, indices)
    notes = [] if plane.orientation is not None else ["no geometry: ordered by InstanceNumber"]
    if slice_spacing is None or frames[0].pixel_spacing is None:
        notes.append("1 mm assumed for unknown spacing")
    row_spacing, col_spacing = frames[0].pixel_spacing or (1.0, 1.0)
    phase_axes = {frame.phase_encode_axis for frame in frames}
    shares = {frame.acquired_share for frame in frames}
    return Stack(
        voxels=voxels,
        spacing_mm=(slice_spacing or 1.0, row_spacing, col_spacing),
        phase_encode_axis=phase_axes.pop() if len(phase_axes) == 1 else None,
        sop_instance_uids=tuple(frame.sop_instance_uid for frame in frames),
        label=f"{label} ({'; '.join(notes)})" if notes else label,
        slice_numbers=_slice_numbers(frames),
        acquired_share=shares.pop() if len(shares) == 1 else None,
    )


def _slice_numbers(frames: Sequence[Frame]) -> tuple[int, ...]:
    """Each slice's InstanceNumber (or frame number); empty unless every slice has a distinct one."""
    numbers = [frame.slice_number for frame in frames]
    if any(number is None for number in numbers) or len(set(numbers)) != len(numbers):
        return ()
    return tuple(number for number in numbers if number is not None)


def _slice_spacing(plane: _Plane, indices: Sequence[int]) -> float | None:
    """Median step between sorted positions; else the header's nominal value (thickness for 1 slice)."""
    if plane.orientation is not None and len(indices) > 1:
        return float(np.median(np.diff([plane.distances[index] for index in indices])))
    first = plane.frames[indices[0]]
    if len(indices) == 1:
        return first.slice_thickness or first.spacing_between_slices
    return first.spacing_between_slices or first.slice_thickness
