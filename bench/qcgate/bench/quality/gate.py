"""Gate-level numbers: does the series verdict separate bad copies from good ones, across images?

Within-image correlations (:mod:`qcgate.bench.quality.analysis`) ask whether a score orders the copies
of one scan. A gate needs more: one threshold for every scan. Every copy falls in one class:

* **severe**: a single corruption at severity >= :data:`SEVERE_FROM`, or a random combination whose
  simulated reader's composite lies below the lowest composite of that image's clean and mild copies;
* **clean/mild**: the clean copy and single corruptions at severity <= :data:`MILD_UP_TO`;
* **re-stored**: a benign re-storing of the clean image (:mod:`qcgate.bench.quality.restorings`);
* **other**: the rest (moderate severities, mild random combinations), in no gate-level number.

The numbers (every fraction comes with its counts; NaN where nothing was counted):

* ``auc``: across-image AUC of severe against clean/mild copies (and against clean/mild plus
  re-stored ones) for the series ``quality``, each metric's calibrated quality and each metric's raw
  value (oriented, higher is better);
* ``flag``: the default flag's sensitivity (severe copies flagged ``warn`` or ``fail``) and
  specificity (clean and re-stored copies that ``pass``), overall, per corruption kind or re-storing,
  per image; clean and re-stored copies that came back ``not_assessable``;
* ``invariance``: per re-storing, over images, the max and mean of |quality(re-stored) -
  quality(clean)|, how many stay within :data:`INVARIANCE_TOLERANCE` points and keep the clean flag;
* ``findings``: for single-kind severe copies, the applied kind against the top finding (the finding
  of highest severity, or ``none``), and how often a finding of the right kind is among them.

Scores and flags are read from each row's ``quality``, ``flag``, ``findings`` and ``metric_quality``,
which stay empty for a runtime that does not report them: the numbers are then NaN or zero.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from qcgate.bench.quality.agreement import auc, oriented
from qcgate.bench.quality.analysis import metric_directions
from qcgate.bench.quality.copies import CLEAN, RANDOM, RESTORE
from qcgate.bench.quality.scoring import VERDICT, ScoreRow
from qcgate.contract.verdict_model import KIND_OF_CORRUPTION

__all__ = [
    "CLEAN_MILD",
    "FINDING_OF_CORRUPTION",
    "INVARIANCE_TOLERANCE",
    "MILD_UP_TO",
    "NO_FINDING",
    "OTHER",
    "RESTORED",
    "SEVERE",
    "SEVERE_FROM",
    "copy_classes",
    "findings_confusion",
    "flag_numbers",
    "gate_analysis",
    "invariance",
    "separation",
]

SEVERE_FROM = 0.6
MILD_UP_TO = 0.2
INVARIANCE_TOLERANCE = 5.0  # points of quality a benign re-storing may move (issue 11's goal)
SEVERE, CLEAN_MILD, RESTORED, OTHER = "severe", "clean_mild", "restored", "other"
NO_FINDING = "none"
FLAGGED = ("warn", "fail")
NOT_ASSESSABLE = "not_assessable"
FINDING_OF_CORRUPTION = KIND_OF_CORRUPTION  # the finding a corruption type should raise
_NAN = float("nan")


def copy_classes(rows: Sequence[ScoreRow]) -> list[str]:
    """Each row's class: :data:`SEVERE`, :data:`CLEAN_MILD`, :data:`RESTORED` or :data:`OTHER`."""
    floor: dict[str, float] = defaultdict(lambda: math.inf)
    for row in rows:
        if _graded(row) and row.severity is not None and row.severity <= MILD_UP_TO:
            floor[row.image] = min(floor[row.image], row.composite)
    classes = []
    for row in rows:
        if row.kind == RESTORE:
            classes.append(RESTORED)
        elif row.kind == RANDOM:
            classes.append(SEVERE if row.composite < floor[row.image] else OTHER)
        elif row.severity is not None and row.severity <= MILD_UP_TO:
            classes.append(CLEAN_MILD)
        elif row.severity is not None and row.severity >= SEVERE_FROM:
            classes.append(SEVERE)
        else:
            classes.append(OTHER)
    return classes


def _graded(row: ScoreRow) -> bool:
    return row.kind not in (RANDOM, RESTORE)


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else _NAN


def _ratio(count: int, total: int) -> float:
    return count / total if total else _NAN


def separation(values: Sequence[float], classes: Sequence[str]) -> dict[str, Any]:
    """AUC of oriented ``values`` (higher is better) for clean/mild (and re-stored) over severe copies."""
    x = np.asarray(values, dtype=np.float64)
    members = {c: [i for i, k in enumerate(classes) if k == c] for c in (SEVERE, CLEAN_MILD, RESTORED)}
    compared = members[SEVERE] + members[CLEAN_MILD]
    return {
        "auc": auc(x[members[CLEAN_MILD]], x[members[SEVERE]]).value,
        "auc_with_restored": auc(x[members[CLEAN_MILD] + members[RESTORED]], x[members[SEVERE]]).value,
        "severe": len(members[SEVERE]),
        "clean_mild": len(members[CLEAN_MILD]),
        "restored": len(members[RESTORED]),
        "without_value": int(np.count_nonzero(~np.isfinite(x[compared]))),
    }


def _flag_counts(rows: Sequence[ScoreRow], classes: Sequence[str]) -> dict[str, Any]:
    severe = [row for row, c in zip(rows, classes, strict=True) if c == SEVERE]
    benign = [row for row in rows if row.kind in (CLEAN, RESTORE)]
    flagged = sum(row.flag in FLAGGED for row in severe)
    passed = sum(row.flag == "pass" for row in benign)
    return {
        "severe": len(severe),
        "flagged": flagged,
        "sensitivity": _ratio(flagged, len(severe)),
        "severe_not_assessable": sum(row.status == NOT_ASSESSABLE for row in severe),
        "benign": len(benign),
        "passed": passed,
        "specificity": _ratio(passed, len(benign)),
        "benign_warned": sum(row.flag == "warn" for row in benign),
        "benign_failed": sum(row.flag == "fail" for row in benign),
        "benign_not_assessable": sum(row.status == NOT_ASSESSABLE for row in benign),
    }


def _split(
    rows: Sequence[ScoreRow], classes: Sequence[str], key: Callable[[ScoreRow], str]
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[key(row)].append(index)
    return {
        name: _flag_counts([rows[i] for i in members], [classes[i] for i in members])
        for name, members in groups.items()
    }


def flag_numbers(rows: Sequence[ScoreRow], classes: Sequence[str]) -> dict[str, Any]:
    """The default flag's sensitivity and specificity overall, per kind (re-storings by name), per image."""
    return {
        "overall": _flag_counts(rows, classes),
        "per_kind": _split(rows, classes, lambda row: row.copy if row.kind == RESTORE else row.kind),
        "per_image": _split(rows, classes, lambda row: row.image),
        "benign_not_assessable": [
            {"image": row.image, "copy": row.copy}
            for row in rows
            if row.kind in (CLEAN, RESTORE) and row.status == NOT_ASSESSABLE
        ],
    }


def invariance(rows: Sequence[ScoreRow]) -> dict[str, dict[str, Any]]:
    """Per re-storing: how far the series quality and flag moved from the clean copy's, over images."""
    clean = {row.image: row for row in rows if row.kind == CLEAN}
    pairs: dict[str, list[tuple[ScoreRow, ScoreRow]]] = defaultdict(list)
    for row in rows:
        if row.kind == RESTORE and row.image in clean:
            pairs[row.copy].append((clean[row.image], row))
    numbers = {}
    for name, members in pairs.items():
        differences = np.array([abs(_finite(r.quality) - _finite(c.quality)) for c, r in members])
        finite = differences[np.isfinite(differences)]
        numbers[name] = {
            "images": len(members),
            "compared": int(finite.size),
            "max_abs_difference": float(finite.max()) if finite.size else _NAN,
            "mean_abs_difference": float(finite.mean()) if finite.size else _NAN,
            "within_tolerance": int(np.count_nonzero(finite <= INVARIANCE_TOLERANCE)),
            "same_flag": sum(c.flag == r.flag for c, r in members),
            "without_quality": int(differences.size - finite.size),
            "per_image": {r.image: _finite(r.quality) - _finite(c.quality) for c, r in members},
        }
    return numbers


def _top_finding(findings: Sequence[Mapping[str, Any]]) -> str:
    """The kind of the most severe finding (the first of equals), or :data:`NO_FINDING`."""

    def severity(finding: Mapping[str, Any]) -> float:
        value = _finite(finding.get("severity"))
        return value if math.isfinite(value) else -math.inf

    return str(max(findings, key=severity).get("kind", NO_FINDING)) if findings else NO_FINDING


def findings_confusion(rows: Sequence[ScoreRow], classes: Sequence[str]) -> dict[str, Any]:
    """Single-kind severe copies: applied kind against top finding, and right-kind hit rates."""
    chosen = [
        row for row, c in zip(rows, classes, strict=True) if c == SEVERE and row.kind in FINDING_OF_CORRUPTION
    ]
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    per_kind: dict[str, dict[str, Any]] = {}
    for row in chosen:
        expected = FINDING_OF_CORRUPTION[row.kind]
        top = _top_finding(row.findings)
        confusion[row.kind][top] += 1
        numbers = per_kind.setdefault(
            row.kind, {"copies": 0, "expected": expected, "top_right": 0, "any_right": 0}
        )
        numbers["copies"] += 1
        numbers["top_right"] += top == expected
        numbers["any_right"] += any(f.get("kind") == expected for f in row.findings)
    top_right = sum(n["top_right"] for n in per_kind.values())
    any_right = sum(n["any_right"] for n in per_kind.values())
    return {
        "copies": len(chosen),
        "top_right": _ratio(top_right, len(chosen)),
        "any_right": _ratio(any_right, len(chosen)),
        "per_kind": per_kind,
        "confusion": {kind: dict(counts) for kind, counts in confusion.items()},
    }


def gate_analysis(rows: Sequence[ScoreRow]) -> dict[str, Any]:
    """Every gate-level number of ``rows``: class sizes, AUCs, flag, invariance, findings."""
    classes = copy_classes(rows)
    metrics = {}
    for metric, higher_is_better in metric_directions(rows).items():
        if metric == VERDICT:
            continue  # reported on its own row, as the series verdict
        calibrated = [_finite(row.metric_quality.get(metric)) for row in rows]
        raw = oriented([row.metrics.get(metric, _NAN) for row in rows], higher_is_better)
        metrics[metric] = {
            "calibrated": separation(calibrated, classes),
            "value": separation(list(raw), classes),
        }
    return {
        "definitions": {
            "severe_from": SEVERE_FROM,
            "mild_up_to": MILD_UP_TO,
            "invariance_tolerance": INVARIANCE_TOLERANCE,
        },
        "classes": dict(Counter(classes)),
        "auc": {
            "quality": separation([_finite(row.quality) for row in rows], classes),
            "metrics": metrics,
        },
        "flag": flag_numbers(rows, classes),
        "invariance": invariance(rows),
        "findings": findings_confusion(rows, classes),
    }
