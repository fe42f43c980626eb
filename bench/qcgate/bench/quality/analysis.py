"""From raw score rows to the benchmark's numbers: per metric, per corruption type and overall.

Groups: each corruption type's series is the clean copy (severity 0) and that type's graded copies;
``random`` is the clean copy and the random combinations; ``overall`` is every copy. For each
metric and group:

* ``srcc_ssim`` / ``plcc_ssim``: the metric (oriented, higher is better) against SSIM to the clean
  image; ``srcc_severity`` / ``plcc_severity``: against minus the severity (random combinations have
  no single severity and are left out of these). Each **within** one source image (the mean of the
  per-image correlations: does the metric order copies of one scan?) and **across** images (all
  copies pooled: is a value comparable between scans?).
* ``ranking`` / ``ranking_consensus``: pairwise ranking accuracy against the simulated reader on the
  pairs of copies of one image where the reader did not answer "similar" (a clear difference);
  the default reader flips 26% of clear calls, as the paper's radiologists disagreed, so its
  ceiling is about 0.74; the consensus reader never flips. Each pair gets one verdict for all
  metrics.

Benign re-storings (kind ``restore``) share the clean copy's reference, so they have no place in a
correlation with damage: they are left out of every group and pair here, and judged by the
gate-level numbers instead (:mod:`qcgate.bench.quality.gate`, invariance).

Positive numbers mean agreement (:mod:`qcgate.bench.quality.agreement`); NaN where too few finite values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from qcgate.bench.quality.agreement import Correlation, mean_finite, oriented, plcc, ranking_accuracy, srcc
from qcgate.bench.quality.copies import CLEAN, RANDOM, RESTORE
from qcgate.bench.quality.scoring import ScoreRow
from qcgate.models.corruption import DEFAULT_READER, ReaderConfig, reader_preference

__all__ = ["OVERALL", "Pair", "analyse", "group_rows", "metric_directions", "reader_pairs"]

OVERALL = "overall"
_CONSENSUS = ReaderConfig(flip_probability=0.0)


@dataclass(frozen=True)
class Pair:
    """Two copies of one image and the readers' verdicts on them."""

    image: str
    first: int  # index into the rows
    second: int
    reader: str  # "first" | "second" | "similar"
    consensus: str


def metric_directions(rows: Sequence[ScoreRow]) -> dict[str, bool]:
    """Every metric that scored any copy, with its direction (higher is better?)."""
    directions: dict[str, bool] = {}
    for row in rows:
        directions.update(row.higher_is_better)
    return directions


def group_rows(rows: Sequence[ScoreRow]) -> dict[str, list[int]]:
    """Row indices per group: each corruption type and ``random`` with the clean copies, and ``overall``
    (every copy but the re-storings)."""
    clean = [i for i, row in enumerate(rows) if row.kind == CLEAN]
    groups: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if row.kind not in (CLEAN, RESTORE):
            groups[row.kind].append(index)
    ordered = {kind: sorted(clean + members) for kind, members in groups.items() if kind != RANDOM}
    if RANDOM in groups:
        ordered[RANDOM] = sorted(clean + groups[RANDOM])
    ordered[OVERALL] = [i for i, row in enumerate(rows) if row.kind != RESTORE]
    return ordered


def reader_pairs(rows: Sequence[ScoreRow], seed: int) -> list[Pair]:
    """Every pair of copies (re-storings aside) of the same image, judged once by each reader (seeded)."""
    by_image: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if row.kind != RESTORE:
            by_image[row.image].append(index)
    rng_reader, rng_consensus = (np.random.default_rng([seed, k]) for k in (1, 2))
    pairs = []
    for image, indices in by_image.items():
        for a, b in combinations(indices, 2):
            qa, qb = rows[a].composite, rows[b].composite
            pairs.append(
                Pair(
                    image,
                    a,
                    b,
                    reader_preference(qa, qb, rng_reader, DEFAULT_READER),
                    reader_preference(qa, qb, rng_consensus, _CONSENSUS),
                )
            )
    return pairs


def _within(
    indices: Sequence[int],
    rows: Sequence[ScoreRow],
    x: np.ndarray,
    y: np.ndarray,
    measure: Callable[..., Correlation],
) -> tuple[float, dict[str, float]]:
    """Mean of the per-image correlations, and each image's."""
    per_image: dict[str, list[int]] = defaultdict(list)
    for index in indices:
        per_image[rows[index].image].append(index)
    values = {image: measure(x[members], y[members]).value for image, members in per_image.items()}
    return mean_finite(list(values.values())), values


def _ranking(pairs: Sequence[Pair], members: set[int], x: np.ndarray, verdict: str) -> Correlation:
    clear = [
        p for p in pairs if p.first in members and p.second in members and getattr(p, verdict) != "similar"
    ]
    return ranking_accuracy(
        [x[p.first] for p in clear], [x[p.second] for p in clear], [getattr(p, verdict) for p in clear]
    )


def _group_numbers(
    indices: list[int], rows: Sequence[ScoreRow], x: np.ndarray, pairs: Sequence[Pair]
) -> dict[str, Any]:
    ssim = np.array([row.reference["ssim"] for row in rows])
    severity = np.array([-row.severity if row.severity is not None else np.nan for row in rows])
    graded = [i for i in indices if rows[i].severity is not None]
    srcc_ssim_within, per_image = _within(indices, rows, x, ssim, srcc)
    ranking, consensus = (_ranking(pairs, set(indices), x, verdict) for verdict in ("reader", "consensus"))
    return {
        "copies": len(indices),
        "srcc_ssim_within": srcc_ssim_within,
        "srcc_ssim_across": srcc(x[indices], ssim[indices]).value,
        "plcc_ssim_within": _within(indices, rows, x, ssim, plcc)[0],
        "plcc_ssim_across": plcc(x[indices], ssim[indices]).value,
        "srcc_severity_within": _within(graded, rows, x, severity, srcc)[0],
        "srcc_severity_across": srcc(x[graded], severity[graded]).value,
        "plcc_severity_across": plcc(x[graded], severity[graded]).value,
        "ranking": ranking.value,
        "ranking_pairs": ranking.n,
        "ranking_consensus": consensus.value,
        "ranking_consensus_pairs": consensus.n,
        "srcc_ssim_per_image": per_image,
    }


def analyse(rows: Sequence[ScoreRow], seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """``{metric: {group: numbers}}`` for every metric that scored any copy."""
    groups = group_rows(rows)
    pairs = reader_pairs(rows, seed)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for metric, higher_is_better in metric_directions(rows).items():
        x = oriented([row.metrics.get(metric, np.nan) for row in rows], higher_is_better)
        results[metric] = {
            group: _group_numbers(indices, rows, x, pairs) for group, indices in groups.items()
        }
    return results
