"""The degraded copies of one evaluation image, each with its reference measures and provenance.

Every copy is a pure function of the benchmark seed, the image's name and the copy's name (its own
random stream), so copies can be made in any order, in any worker process, and come out the same.
Severity 0 is not a corruption: the unmodified image is scored once as the copy ``clean`` and
stands at severity 0 in every corruption type's series. The reference measures (SSIM, PSNR,
NRMSE, VIF) and the simulated reader's composite compare each copy with that clean image, over the
whole image: the same measures the simulator's reader judges by.

Benign re-storings (:mod:`qcgate.bench.quality.restorings`: rescaled, mirrored, transposed, cropped,
zero-filled or padded air, one slice) are copies of kind :data:`RESTORE` at severity 0, named
``restore-<re-storing>``; nothing was corrupted, so their reference is the clean image's own, and
their :class:`~qcgate.bench.quality.restorings.Storage` says how to write them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qcgate.bench.quality.real_images import EvaluationImage
from qcgate.bench.quality.restorings import RESTORINGS, Storage, restore, restoring_applies
from qcgate.models.corruption import (
    AppliedCorruption,
    composite_from_measures,
    corrupt,
    corrupt_random,
    reference_measures,
)

__all__ = [
    "CLEAN",
    "RANDOM",
    "RESTORE",
    "CopySpec",
    "DegradedCopy",
    "applies_to",
    "copy_specs",
    "corrupted_volume",
    "make_copy",
    "restoring_of",
]

CLEAN = "clean"
RANDOM = "random"
RESTORE = "restore"


@dataclass(frozen=True)
class CopySpec:
    """What one copy is: ``kind`` is a corruption type, :data:`CLEAN`, :data:`RANDOM` or :data:`RESTORE`."""

    name: str  # unique within an image: "clean", "noise@0.4", "random-03", "restore-transposed"
    kind: str
    severity: float | None  # None for random combinations


@dataclass(frozen=True)
class DegradedCopy:
    """A copy of an evaluation image (still evaluation data: ``provenance`` says so)."""

    image: str
    spec: CopySpec
    volume: np.ndarray  # (S, R, C) float32 magnitude
    applied: tuple[AppliedCorruption, ...]
    reference: dict[str, float]  # ssim, psnr, nrmse, vif against the clean image
    composite: float  # the simulated reader's 0..1 composite of ``reference``
    provenance: dict[str, Any] = field(default_factory=dict)
    storage: Storage | None = None  # a re-storing's geometry and intensity storage; None: the image's own


def copy_specs(
    kinds: Sequence[str],
    severities: Sequence[float],
    random_combinations: int,
    restorings: Sequence[str] = (),
) -> list[CopySpec]:
    """The clean copy, each kind at each positive severity, the random combinations, the re-storings."""
    if any(not 0.0 <= s <= 1.0 for s in severities):
        raise ValueError(f'Argument "severities" must lie in [0, 1], got {list(severities)}.')
    if unknown := sorted(set(restorings) - set(RESTORINGS)):
        raise ValueError(f'Argument "restorings" has unknown names {unknown}; known: {list(RESTORINGS)}.')
    graded = sorted({float(s) for s in severities if s > 0})
    specs = [CopySpec(CLEAN, CLEAN, 0.0)]
    specs += [CopySpec(f"{kind}@{severity:g}", kind, severity) for kind in kinds for severity in graded]
    specs += [CopySpec(f"{RANDOM}-{index:02d}", RANDOM, None) for index in range(random_combinations)]
    specs += [CopySpec(f"{RESTORE}-{name}", RESTORE, 0.0) for name in restorings]
    return specs


def restoring_of(spec: CopySpec) -> str:
    """The re-storing a :data:`RESTORE` copy applies ("transposed" for "restore-transposed")."""
    if spec.kind != RESTORE:
        raise ValueError(f'Argument "spec" must be a re-storing, got the {spec.kind} copy {spec.name!r}.')
    return spec.name.removeprefix(f"{RESTORE}-")


def applies_to(spec: CopySpec, image: EvaluationImage) -> bool:
    """Whether ``spec`` makes a copy of ``image`` (a one-slice image has no single-slice re-storing)."""
    return spec.kind != RESTORE or restoring_applies(restoring_of(spec), image.volume)


def corrupted_volume(
    image: EvaluationImage, spec: CopySpec, seed: int, max_corruptions: int = 5
) -> tuple[np.ndarray, tuple[AppliedCorruption, ...]]:
    """The volume of copy ``spec`` of ``image`` and what was applied, from a random stream of its own."""
    rng = np.random.default_rng([seed, zlib.crc32(image.name.encode()), zlib.crc32(spec.name.encode())])
    axis = image.phase_encode_axis
    if spec.kind == CLEAN:
        return image.volume.astype(np.float32), ()
    if spec.kind == RESTORE:
        return restore(image.volume.astype(np.float32), restoring_of(spec))[0], ()
    if spec.kind == RANDOM:
        volume, records = corrupt_random(
            image.volume, rng, max_corruptions=max_corruptions, phase_encode_axis=axis
        )
        return volume, tuple(records)
    volume, record = corrupt(
        image.volume, spec.kind, float(spec.severity or 0.0), rng, phase_encode_axis=axis
    )
    return volume, (record,)


def make_copy(image: EvaluationImage, spec: CopySpec, seed: int) -> DegradedCopy:
    """The copy ``spec`` of ``image`` with its reference measures against the clean image.

    A re-stored copy's reference is the clean image's own (nothing was corrupted; its grid may differ).
    """
    storage = None
    if spec.kind == RESTORE:
        volume, storage = restore(image.volume.astype(np.float32), restoring_of(spec))
        applied: tuple[AppliedCorruption, ...] = ()
        reference = reference_measures(image.volume, image.volume)
    else:
        volume, applied = corrupted_volume(image, spec, seed)
        reference = reference_measures(image.volume, volume)
    provenance = {
        **image.provenance,
        "derived_from": image.name,
        "copy": spec.name,
        "corruptions": [{"kind": a.kind, "severity": a.severity, **a.parameters} for a in applied],
    }
    if spec.kind == RESTORE:
        provenance["restoring"] = restoring_of(spec)
    return DegradedCopy(
        image.name, spec, volume, applied, reference, composite_from_measures(reference), provenance, storage
    )
