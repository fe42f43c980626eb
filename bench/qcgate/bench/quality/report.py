"""The benchmark's written outputs: ``quality.md`` (tables a person reads) and ``quality.json``.

The JSON holds every number of :func:`qcgate.bench.quality.analysis.analyse` (``results``) and of
:func:`qcgate.bench.quality.gate.gate_analysis` (``gate``), every raw score row and the run's settings
and environment, so any table can be rebuilt without scoring again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from qcgate.bench.environment import environment
from qcgate.bench.quality.analysis import OVERALL
from qcgate.bench.quality.gate_report import gate_markdown
from qcgate.bench.quality.real_images import EvaluationImage
from qcgate.bench.quality.scoring import ScoreRow

__all__ = ["markdown", "write_json"]

_OVERALL_COLUMNS = (
    ("srcc_ssim_within", "SRCC vs SSIM, within image"),
    ("srcc_ssim_across", "SRCC vs SSIM, across images"),
    ("plcc_ssim_across", "PLCC vs SSIM, across"),
    ("srcc_severity_within", "SRCC vs severity, within"),
    ("srcc_severity_across", "SRCC vs severity, across"),
    ("plcc_severity_across", "PLCC vs severity, across"),
    ("ranking", "ranking acc., reader"),
    ("ranking_consensus", "ranking acc., consensus"),
)
_PER_KIND_TABLES = (
    ("srcc_ssim_within", "SRCC against SSIM within one image, per corruption type"),
    ("srcc_severity_within", "SRCC against severity within one image, per corruption type"),
    ("ranking_consensus", "Pairwise ranking accuracy against the consensus reader, per corruption type"),
)


def _cell(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.2f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def markdown(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    directions: Mapping[str, bool],
    images: Sequence[EvaluationImage],
    settings: Mapping[str, Any],
    runtime_s: float,
    gate: Mapping[str, Any] | None = None,
) -> str:
    """The report: settings, the overall table, the gate level (when given), per-type tables,
    per-image table, the images."""
    metrics = list(results)
    kinds = list(next(iter(results.values()))) if results else []  # types, then random, then overall
    name = {m: f"{m} ({'↑' if directions[m] else '↓'})" for m in metrics}
    lines = [
        "# Quality benchmark",
        "",
        f"{len(images)} real evaluation images, severities {settings['severities']}, "
        f"{settings['random_combinations']} random combinations and "
        f"{len(settings.get('restorings', []))} benign re-storings each, {settings['copies']} scored copies; "
        f"seed {settings['seed']}; {runtime_s:.0f} s on {settings['jobs']} worker(s). "
        "Metrics are oriented so that positive means agreement (↑ higher is better, ↓ lower is better). "
        "Within: mean of per-image correlations; across: all images pooled. "
        "The default reader flips 26% of clear calls (ceiling about 0.74); the consensus reader never does.",
        "",
        "## Overall",
        "",
        *_table(
            ["metric", *(title for _, title in _OVERALL_COLUMNS)],
            [[name[m], *(_cell(results[m][OVERALL][key]) for key, _ in _OVERALL_COLUMNS)] for m in metrics],
        ),
    ]
    if gate is not None:
        lines += gate_markdown(gate, directions)
    for key, title in _PER_KIND_TABLES:
        lines += [f"## {title}", ""]
        lines += _table(
            ["metric", *kinds], [[name[m], *(_cell(results[m][g][key]) for g in kinds)] for m in metrics]
        )
    lines += ["## SRCC against SSIM within each image (all its copies), by anatomy", ""]
    lines += _table(
        ["metric", *(f"{i.name} ({i.anatomy})" for i in images)],
        [
            [name[m], *(_cell(results[m][OVERALL]["srcc_ssim_per_image"].get(i.name)) for i in images)]
            for m in metrics
        ],
    )
    lines += ["## Images", ""]
    lines += _table(
        ["image", "anatomy", "shape (S, R, C)", "spacing (mm)", "source", "notes"],
        [
            [
                i.name,
                i.anatomy,
                "×".join(str(n) for n in i.volume.shape),
                " × ".join(f"{s:g}" for s in np.round(i.spacing_mm, 3)),
                str(i.provenance.get("origin", "")),
                "; ".join(i.provenance.get("notes", [])),
            ]
            for i in images
        ],
    )
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(
    path: Path,
    results: Mapping[str, Any],
    directions: Mapping[str, bool],
    rows: Sequence[ScoreRow],
    images: Sequence[EvaluationImage],
    settings: Mapping[str, Any],
    runtime_s: float,
    gate: Mapping[str, Any] | None = None,
) -> None:
    """Everything: settings, environment, images, per-metric and gate-level numbers, every raw row."""
    document = {
        "settings": dict(settings),
        "environment": environment(),
        "runtime_s": round(runtime_s, 1),
        "images": [
            {
                "name": i.name,
                "anatomy": i.anatomy,
                "shape": list(i.volume.shape),
                "spacing_mm": list(i.spacing_mm),
                "phase_encode_axis": i.phase_encode_axis,
                "provenance": dict(i.provenance),
            }
            for i in images
        ],
        "higher_is_better": dict(directions),
        "results": results,
        "gate": gate,
        "rows": [asdict(row) for row in rows],
    }
    path.write_text(json.dumps(_json_safe(document), indent=1) + "\n")
