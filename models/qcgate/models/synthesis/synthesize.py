"""Clean synthetic MR slices and volumes, deterministic from a seed: the training data's ground truth.

A seed picks an anatomy source, a contrast and a field strength (by the config's weights), draws the
anatomy, a scanner grid and pose, renders tissue compartments, and acquires them (signal equations,
texture, bias, phase). Each stage draws from its own child of the seed, so a change in one stage
leaves the draws of the others alone. Bump :data:`DATA_VERSION` whenever the output for a given seed
and config changes: checkpoints record it, so a model is always traceable to its data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from qcgate.models.synthesis.anatomy import Anatomy, Compartment
from qcgate.models.synthesis.body import sample_body
from qcgate.models.synthesis.config import SynthesisConfig, choose
from qcgate.models.synthesis.fields import Canvas
from qcgate.models.synthesis.geometry import sample_geometry
from qcgate.models.synthesis.label_maps import sample_label_map
from qcgate.models.synthesis.mni import sample_mni_head
from qcgate.models.synthesis.phantom import sample_shepp_logan
from qcgate.models.synthesis.scanner import acquire
from qcgate.models.synthesis.sequences import sample_sequence

__all__ = ["ANATOMY_SOURCES", "DATA_VERSION", "SyntheticImage", "synthesize_slice", "synthesize_volume"]

DATA_VERSION = "synth-1"

ANATOMY_SOURCES: Mapping[str, Callable[[np.random.Generator], Anatomy]] = {
    "mni": sample_mni_head,
    "labels": sample_label_map,
    "body": sample_body,
    "phantom": sample_shepp_logan,
}

_DEFAULT_CONFIG = SynthesisConfig()


@dataclass(frozen=True)
class SyntheticImage:
    """One clean synthetic image at native resolution, and how it was made."""

    image: np.ndarray  # complex64 (R, C) or (S, R, C), clean
    magnitude: np.ndarray  # float32 |image|; the foreground's 99th percentile is 1.0
    foreground: np.ndarray  # bool, the imaged object (tissue fills at least half the voxel)
    spacing_mm: tuple[float, ...]  # per axis of image
    provenance: dict[str, object]


def synthesize_slice(seed: int, config: SynthesisConfig = _DEFAULT_CONFIG) -> SyntheticImage:
    """A clean 2D slice (R, C); the matrix and spacing are random, never resampled to a fixed size."""
    return _synthesize(seed, config, volume=False, shape=None)


def synthesize_volume(
    seed: int, config: SynthesisConfig = _DEFAULT_CONFIG, shape: tuple[int, int, int] | None = None
) -> SyntheticImage:
    """A clean 3D volume (S, R, C) of contiguous slices; ``shape`` fixes its size (a native-resolution
    crop when small), otherwise it is drawn from ``config.volume_matrix`` and ``config.volume_slices``."""
    if shape is not None and (len(shape) != 3 or min(shape) < 1):
        raise ValueError(f'Argument "shape" must be three positive lengths (S, R, C), got {shape}.')
    return _synthesize(seed, config, volume=True, shape=shape)


def _synthesize(
    seed: int, config: SynthesisConfig, volume: bool, shape: tuple[int, int, int] | None
) -> SyntheticImage:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f'Argument "seed" must be a non-negative integer, got {seed!r}.')
    choices, anatomy_rng, geometry_rng, scanner_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(int(seed)).spawn(4)
    )
    source = choose(config.source_weights, choices)
    contrast = choose(config.contrast_weights, choices)
    field_T = choose(config.field_weights, choices)

    anatomy = ANATOMY_SOURCES[source](anatomy_rng)
    geometry = sample_geometry(anatomy.extent_mm, config, geometry_rng, volume, shape)
    canvas = Canvas(geometry.shape, geometry.spacing_mm, scanner_rng, geometry.z_alignment())
    points = geometry.points(canvas)  # (3, subslices, *shape)
    compartments = [_average_subslices(c, len(geometry.shape)) for c in anatomy.render(points, canvas)]
    sequence = sample_sequence(contrast, field_T, scanner_rng)
    acquisition = acquire(compartments, sequence, field_T, config, canvas)

    provenance: dict[str, object] = {
        "kind": "synthetic",
        "data_version": DATA_VERSION,
        "seed": int(seed),
        "source": source,
        "contrast": contrast,
        "sequence": sequence.kind,
        "field_T": field_T,
        "TR": sequence.tr_ms,
        "TE": sequence.te_ms,
        "TI": sequence.ti_ms,
        "flip_deg": sequence.flip_deg,
        **geometry.record(),
        "anatomy": _json_safe(dataclasses.asdict(anatomy)),
    }
    return SyntheticImage(
        image=acquisition.image,
        magnitude=np.abs(acquisition.image).astype(np.float32),
        foreground=acquisition.foreground,
        spacing_mm=geometry.spacing_mm,
        provenance=provenance,
    )


def _average_subslices(compartment: Compartment, ndim: int) -> Compartment:
    """The compartment's weight averaged over the sub-slices across the slice thickness (axis 0)."""
    weight = compartment.weight
    if weight.ndim > ndim:
        weight = weight.mean(axis=0, dtype=np.float32)
    return Compartment(compartment.tissue, weight, compartment.jitter)


def _json_safe(value: object) -> object:
    """Tuples to lists and NumPy scalars to Python numbers, so provenance serialises as it stands."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
