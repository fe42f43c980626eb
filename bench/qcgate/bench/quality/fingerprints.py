"""Write the evaluation-image fingerprint registry that the training side's guard reads.

``python -m qcgate.bench.quality.fingerprints`` (about two minutes) thumbnails every slice of every real
evaluation image (:mod:`qcgate.bench.quality.real_images`) into ``models/evaluation_fingerprints.json``
and calibrates each image's match threshold between two similarity distributions, both measured
with :func:`qcgate.models.evaluation_guard.similarities`:

* **its corrupted copies**: every corruption type at severities 0.25 to 1 and random combinations
  of up to five, made by the simulator the benchmark uses (the lowest similarity to its own rows);
* **synthetic training slices** (:func:`qcgate.models.synthesis.synthesize_slice`) and the service's head
  phantom (the highest similarity to any of its rows).

The threshold is the midpoint. ``tests/test_training_isolation.py`` checks fresh copies and fresh
synthetic slices (other seeds) against it. Rerun this whenever an evaluation image, the simulator
or the fingerprint changes; the test comparing the registry with the current images fails until then.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qcgate.bench.quality.real_images import EvaluationImage, evaluation_images
from qcgate.models.corruption import CORRUPTION_TYPES, corrupt, corrupt_random
from qcgate.models.corruption.kspace import foreground
from qcgate.models.evaluation_guard import (
    FINGERPRINT_SIZE,
    REGISTRY_PATH,
    FingerprintRegistry,
    registry_document,
    registry_entry,
    registry_from_document,
    similarities,
    thumbnail,
)
from qcgate.models.synthesis import synthesize_slice
from qcgate.synthetic.volumes import phantom_volume

__all__ = [
    "CALIBRATION_SEVERITIES",
    "Calibration",
    "calibrate",
    "corrupted_copies",
    "main",
    "registry_entries",
    "synthetic_references",
]

CALIBRATION_SEVERITIES = (0.25, 0.5, 0.75, 1.0)
_RANDOM_COMBINATIONS = 20
_SYNTHETIC_SEEDS = range(300)
_SEED = 20240601


@dataclass(frozen=True)
class Calibration:
    """One image's threshold and the two similarities it sits between."""

    image: str
    lowest_corrupted: float
    highest_synthetic: float

    @property
    def threshold(self) -> float:
        return 0.5 * (self.lowest_corrupted + self.highest_synthetic)


def corrupted_copies(
    image: EvaluationImage, rng: np.random.Generator, severities: Sequence[float], random_combinations: int
) -> Iterator[np.ndarray]:
    """Every corruption type at each of ``severities``, then ``random_combinations`` random mixes."""
    for kind in CORRUPTION_TYPES:
        for severity in severities:
            yield corrupt(image.volume, kind, severity, rng, phase_encode_axis=image.phase_encode_axis)[0]
    for _ in range(random_combinations):
        yield corrupt_random(image.volume, rng, phase_encode_axis=image.phase_encode_axis)[0]


def synthetic_references(seeds: Sequence[int]) -> Iterator[np.ndarray]:
    """Clean synthetic training slices for ``seeds``, then the service's head phantom."""
    for seed in seeds:
        yield synthesize_slice(seed).magnitude
    yield phantom_volume((24, 160, 128), seed=seeds[0] if seeds else 0)


def registry_entries(images: Sequence[EvaluationImage], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """One registry entry per slice, with the extent of the object along phase encoding to fold it.

    The extent is measured as the simulator measures it before wrapping: the rows (along the phase
    encoding axis) where any slice of the volume has foreground, in thumbnail pixels.
    """
    entries = []
    for image in images:
        pe_axis = image.volume.ndim + image.phase_encode_axis  # of (S, R, C)
        other = tuple(a for a in range(image.volume.ndim) if a != pe_axis)
        rows = np.flatnonzero(foreground(np.abs(image.volume)).any(axis=other))
        scale = FINGERPRINT_SIZE / image.volume.shape[pe_axis]
        first, extent = float(rows[0]) * scale, float(rows[-1] - rows[0] + 1) * scale
        for index, slice_ in enumerate(image.volume):
            entries.append(
                registry_entry(
                    f"{image.name}[{index}]",
                    image.name,
                    thumbnail(slice_),
                    pe_axis - 1,
                    first,
                    extent,
                    thresholds.get(image.name, 0.0),
                )
            )
    return entries


def calibrate(
    images: Sequence[EvaluationImage],
    *,
    synthetic_seeds: Sequence[int] = _SYNTHETIC_SEEDS,
    severities: Sequence[float] = CALIBRATION_SEVERITIES,
    random_combinations: int = _RANDOM_COMBINATIONS,
    seed: int = _SEED,
) -> list[Calibration]:
    """Each image's lowest corrupted and highest synthetic similarity to its registry rows."""
    registry: FingerprintRegistry = registry_from_document(registry_document(registry_entries(images, {})))
    owner = np.asarray(registry.images)
    highest = np.full(len(owner), -1.0)
    for reference in synthetic_references(list(synthetic_seeds)):
        highest = np.maximum(highest, similarities(reference, registry))
    rng = np.random.default_rng(seed)
    calibrations = []
    for image in images:
        mine = owner == image.name
        lowest = min(
            float(similarities(copy, registry)[mine].max())
            for copy in corrupted_copies(image, rng, severities, random_combinations)
        )
        calibrations.append(Calibration(image.name, lowest, float(highest[mine].max())))
        print(f"fingerprints: {image.name}: corrupted copies >= {lowest:.3f}", file=sys.stderr)  # noqa: T201
    return calibrations


def main(argv: Sequence[str] | None = None) -> int:
    """Calibrate, write ``models/evaluation_fingerprints.json`` and print the calibration table."""
    del argv  # no options: the registry is one well-defined file
    images = evaluation_images()
    calibrations = calibrate(images)
    thresholds = {c.image: c.threshold for c in calibrations}
    summary = [
        {
            "image": c.image,
            "lowest_corrupted": round(c.lowest_corrupted, 4),
            "highest_synthetic": round(c.highest_synthetic, 4),
            "threshold": round(c.threshold, 4),
        }
        for c in calibrations
    ]
    document = registry_document(registry_entries(images, thresholds), calibration=summary)
    REGISTRY_PATH.write_text(json.dumps(document, indent=1) + "\n")
    print("| image | lowest similarity, corrupted copies | highest, synthetic slices | threshold |")  # noqa: T201
    print("|---|---|---|---|")  # noqa: T201
    for c in calibrations:
        print(f"| {c.image} | {c.lowest_corrupted:.3f} | {c.highest_synthetic:.3f} | {c.threshold:.3f} |")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
