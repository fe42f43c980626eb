"""Write the quality benchmark's figures of each shipped learned model into its manifest entry.

The manifest travels with the ONNX files, so whoever deploys a model sees how well that exact
version did on the real evaluation images without finding the benchmark report.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qcgate.bench.quality.analysis import OVERALL
from qcgate.bench.quality.copies import RANDOM
from qcgate.contract.manifest import Manifest, load_manifest, write_manifest

__all__ = ["benchmark_figures", "record_in_manifest"]


def benchmark_figures(groups: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The headline numbers of one metric: overall, and the worst single corruption type."""
    overall = groups[OVERALL]
    per_type = {
        group: numbers["srcc_ssim_within"]
        for group, numbers in groups.items()
        if group not in (OVERALL, RANDOM) and math.isfinite(numbers["srcc_ssim_within"])
    }
    figures = {
        "quality_srcc_ssim_within": overall["srcc_ssim_within"],
        "quality_srcc_ssim_across": overall["srcc_ssim_across"],
        "quality_reader_ranking": overall["ranking_consensus"],
        "quality_copies": float(overall["copies"]),
    }
    if per_type:
        figures["quality_srcc_ssim_within_worst_type"] = min(per_type.values())
    return {name: round(float(value), 4) for name, value in figures.items()}


def record_in_manifest(results: Mapping[str, Mapping[str, Mapping[str, Any]]], path: Path) -> Manifest:
    """Replace the quality figures of every manifest model the benchmark scored; keep the rest."""
    manifest = load_manifest(path)
    models = tuple(
        dataclasses.replace(entry, benchmarks={**entry.benchmarks, **benchmark_figures(results[entry.name])})
        if entry.name in results
        else entry
        for entry in manifest.models
    )
    updated = dataclasses.replace(manifest, models=models)
    write_manifest(updated, path)
    return updated
