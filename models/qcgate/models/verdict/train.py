"""Fit the verdict model on the synthetic splits, write ``verdict.json`` and its held-out evidence.

``python -m qcgate.models.verdict.train --out export/qcgate/contract/verdict/verdict.json``
regenerates the shipped model: it fills (or reuses) the data cache of :mod:`.generate` (keyed by
the code that makes the rows), then, deterministically (no random draws, no clock):

1. ``train``: quantile knots of every feature (the artifact features and, since 0.7.0, the learned
   metrics of :data:`LEARNED`, which only the quality head reads), the clean-air fill (the finding
   heads') and the air predicted from the anatomy (the quality head's), the monotone quality head (with
   and without a dead zone over the clean range, for the air features and for all) and the
   finding heads, for every setting in :data:`QUALITY_GRID` and :data:`FINDING_GRID`;
2. ``validation``: picks the quality setting with the best AUC (severe vs clean/mild) less a
   penalty on the change of quality between the two re-stored clean copies of each base, and the
   finding setting with the best kind accuracy on single-kind severe copies; calibrates quality
   isotonically onto the reference label; sets each kind's reporting threshold on the clean
   copies (a common quantile, so that at most :data:`CLEAN_FINDING_RATE` of them get any finding);
3. ``test`` (other seeds, never used above): the figures in ``evidence_synthetic.json`` beside
   the data cache and, without the machine-dependent timing, in the model file itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from qcgate.contract.artifacts import AIR_FEATURES, FEATURE_NAMES
from qcgate.contract.verdict_model import FORMAT, VerdictModel
from qcgate.models.synthesis import synthesize_volume
from qcgate.models.verdict import generate
from qcgate.models.verdict.data import CONFIG, FINDING_KINDS, KIND_OF_CORRUPTION, make_base
from qcgate.models.verdict.evidence import BENIGN, auc, benign_variants, finding_accuracy, srcc
from qcgate.models.verdict.fit import (
    fit_finding,
    fit_kind,
    fit_quality,
    fit_worst_kind,
    isotonic_knots,
    quantile_knots,
)
from qcgate.models.verdict.learned_inputs import LEARNED_INPUTS, learned_scores

VERSION = "0.7.1"
AIR_OFF = "off"
Setting = tuple[str, str, float, float | None, float | str | None, float]
QUALITY_GRID: tuple[Setting, ...] = (
    *(
        ("additive", target, l2, dead, air_dead, pair_weight)
        for target in ("label", "severity")
        for l2 in (1e-4, 1e-3, 1e-2)
        for dead in (None, 50.0)  # the quality knots start at this percentile of clean copies ...
        # ... and those of the air features at this one; AIR_OFF: quality judges the anatomy alone
        # (the air features then only raise findings), so zero-filled or cropped air cannot move it
        for air_dead in (None, 75.0, 90.0, AIR_OFF)
        for pair_weight in (0.0, 1.0, 10.0)  # weight of the clean-pair invariance term of the fit
    ),
    *(  # as good as the worst artifact: one monotone head per kind, fitted to its applied severity
        ("worst_kind", "severity", l2, dead, air_dead, pair_weight)
        for l2 in (1e-4, 1e-3)
        for dead in (None, 50.0)
        for air_dead in (None, AIR_OFF)
        for pair_weight in (0.0, 1.0, 10.0, 30.0, 100.0)  # 0.4.0 stopped at 10, which won
    ),
)
FINDING_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
KIND_GRID: tuple[float, ...] = (1e-3, 1e-2)  # the softmax kind head ships only if it beats the heads
# ... by this much kind accuracy, about one standard error on the ~570 severe single-kind validation
# copies: it scales every kind but the likeliest down, so a head that wins by noise can hide a real
# finding (a Nyquist ghost read as wrap-around at 23 instead of 63 in a 2026-12-05 fit).
KIND_HEAD_MARGIN = 0.02
KIND_HEAD_MIN_SEVERITY = 0.3
INVARIANCE_PENALTY = 0.005  # AUC given up per point of clean re-storing change (validation; the
# mean of the pairs' mean and 95th-percentile change: the issue asks for a bound, not an average)
CLEAN_FINDING_RATE = 0.05
MIN_THRESHOLD = 20.0
SEVERE, MILD = 0.6, 0.2
MODERATE = 0.4  # the most damage a copy may have and still never fail by default
DEFAULT_DATA = Path("models/runs/verdict")
# The learned metrics the quality head reads (0.7.0); the finding heads read the artifact features only:
# with the learned scores they flagged fewer severe validation copies (docs/training.md, 2026-12-05).
LEARNED: tuple[str, ...] = LEARNED_INPUTS  # all the rows carry; a subset is a training option (--learned)
AIR_FILL_FROM_ANATOMY = True  # fill missing air from the anatomy (air_fill_from_anatomy), not a constant


# ---- rows ------------------------------------------------------------------------------------


def _value(row: dict, name: str) -> float:
    """A row's artifact feature, or its learned metric's score (``row["learned"]``)."""
    return row["features"][name] if name in row["features"] else row["learned"][name]


def _columns(rows: list[dict], model: VerdictModel) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The rows' values of the model's features (a learned score a copy lacks reads the model's
    ``learned_fill``, as at run time), and whether each row's air was usable."""
    values = {}
    for name in model.feature_names:
        column = np.array([_value(row, name) for row in rows], dtype=np.float64)
        if name in model.learned_inputs:
            column = np.where(np.isfinite(column), column, float(model.document["learned_fill"][name]))
        values[name] = column
    return values, np.array([row["per_slice_air"] for row in rows])


def _matrix(model: VerdictModel, rows: list[dict], head: dict | None = None) -> np.ndarray:
    """(n, features) with the fill of ``head`` (else the model's clean-air fill) where a row's air
    was not usable."""
    return model.rows(*_columns(rows, model), head)


def quality_of_rows(model: VerdictModel, rows: list[dict]) -> np.ndarray:
    """Calibrated quality of each row, as :meth:`VerdictModel.quality_of` gives it at run time."""
    return model.quality_of(*_columns(rows, model))


def _worst(row: dict) -> float:
    return max(row["severities"].values())


def _is_clean(row: dict) -> bool:
    return _worst(row) == 0.0


def _quality_target(rows: list[dict], target: str) -> np.ndarray:
    if target == "label":
        return np.array([row["label"] for row in rows])
    return np.array([100.0 * (1.0 - _worst(row)) for row in rows])


def _severe_vs_mild(quality: np.ndarray, rows: list[dict]) -> tuple[list[float], list[float]]:
    """Quality of severe and of clean/mild copies: single-kind or clean copies only (issue 11)."""
    severe, mild = [], []
    for q, row in zip(quality, rows, strict=True):
        if row["single_kind"] is None and not _is_clean(row):
            continue
        if _worst(row) >= SEVERE:
            severe.append(float(q))
        elif _worst(row) <= MILD:
            mild.append(float(q))
    return severe, mild


def selection_score(quality: np.ndarray, rows: list[dict]) -> tuple[float, float, float, float]:
    """(score, AUC, mean change, p95 change) by which a quality head is chosen on ``rows``.

    The AUC of ``quality`` for severe against clean/mild copies, less :data:`INVARIANCE_PENALTY`
    per point of change between the two storings of each clean base (the mean of its mean and its
    95th percentile). Putting the issue's invariance limit first (p95 of the clean pairs within 5
    points) was tried for 0.3.0: only an anatomy-only head with a strong pair term met it, at a
    validation AUC of 0.82 against 0.88, and a gate that misses severe series to keep clean ones
    within 5 points is the worse trade (docs/training.md).
    """
    severe, mild = _severe_vs_mild(quality, rows)
    changes = _clean_pair_change(quality, rows)
    value, change = auc(mild, severe), float(np.mean(changes))
    p95 = float(np.percentile(changes, 95))
    return value - INVARIANCE_PENALTY * (change + p95) / 2, value, change, p95


def _clean_pairs(rows: list[dict]) -> np.ndarray:
    """(n, 2) row indices of the two clean copies of each base (one image stored two ways)."""
    by_base: dict[int, dict[int, int]] = {}
    for index, row in enumerate(rows):
        if row["copy"] < 2:
            by_base.setdefault(row["base_seed"], {})[row["copy"]] = index
    return np.array([[c[0], c[1]] for c in by_base.values() if len(c) == 2], dtype=int).reshape(-1, 2)


def _clean_pair_change(quality: np.ndarray, rows: list[dict]) -> np.ndarray:
    """|quality(copy 0) - quality(copy 1)| per base: the same clean image stored two ways."""
    by_base: dict[int, dict[int, float]] = {}
    for q, row in zip(quality, rows, strict=True):
        if row["copy"] < 2:
            by_base.setdefault(row["base_seed"], {})[row["copy"]] = float(q)
    return np.array([abs(c[0] - c[1]) for c in by_base.values() if len(c) == 2])


def _kind_accuracy(model: VerdictModel, rows: list[dict]) -> tuple[float, dict]:
    chosen = [row for row in rows if row["single_kind"] and _worst(row) >= SEVERE]
    severities = model.severities(_matrix(model, chosen))
    predicted = [{k: float(v[n]) for k, v in severities.items()} for n in range(len(chosen))]
    return finding_accuracy([KIND_OF_CORRUPTION[row["single_kind"]] for row in chosen], predicted)


# ---- fitting ---------------------------------------------------------------------------------


def fit(
    folder: Path,
    learned: tuple[str, ...] = LEARNED,
    learned_findings: bool = False,
    learned_kind_head: bool = False,
) -> tuple[dict, dict]:
    """(the verdict document, the validation record of the model selection); ``learned``: the
    learned metrics (:data:`~.learned_inputs.LEARNED_INPUTS`) read beside the artifact features,
    by the quality head and, with ``learned_findings``, by the finding heads too."""
    train, validation = generate.load_split(folder, "train"), generate.load_split(folder, "validation")
    names = (*FEATURE_NAMES, *learned)
    raw_train = np.array([[_value(row, name) for name in names] for row in train], dtype=np.float64)
    clean_train = np.array([_is_clean(row) for row in train])
    learned_fill = {
        name: round(float(np.nanmedian(raw_train[clean_train, names.index(name)])), 6) for name in learned
    }
    for name in learned:
        column = raw_train[:, names.index(name)]
        column[~np.isfinite(column)] = learned_fill[name]
    usable = np.array([row["per_slice_air"] for row in train]) > 0
    clean_air = usable & clean_train
    document: dict = {
        "format": FORMAT,
        "version": VERSION,
        "feature_names": list(names),
        "learned_inputs": list(learned),
        "learned_fill": learned_fill,
        "knots": {
            name: quantile_knots(raw_train[usable if name in AIR_FEATURES else slice(None), j])
            for j, name in enumerate(names)
        },
        "air_fill": {
            name: round(float(np.median(raw_train[clean_air, names.index(name)])), 6) for name in AIR_FEATURES
        },
    }
    quality_fill: dict = {}
    if AIR_FILL_FROM_ANATOMY:
        air_fill, air_fill_weights = air_fill_from_anatomy(raw_train[usable][:, : len(FEATURE_NAMES)])
        quality_fill = {"air_fill": air_fill, "air_fill_weights": air_fill_weights}
    model = VerdictModel(document)
    basis = model.basis(_matrix(model, train))  # the finding heads' basis: knots over all values
    kind_basis = basis.copy()
    unread = _columns_of(document["knots"], () if learned_findings else learned, names)
    basis[:, unread] = 0.0
    kind_unread = np.zeros(0, int) if learned_kind_head else unread
    kind_basis[:, kind_unread] = 0.0
    x_validation = _matrix(model, validation, quality_fill)
    validation_label = np.array([row["label"] for row in validation])
    selection: dict = {"quality": [], "findings": [], "kind_head": []}

    x_train = _matrix(model, train, quality_fill)
    best = None
    pairs = _clean_pairs(train)
    severities = np.array([[row["severities"][kind] for kind in FINDING_KINDS] for row in train])
    for form, target, l2, dead, air_dead, pair_weight in QUALITY_GRID:
        knots = dict(document["knots"])
        for j, name in enumerate(names):
            zone = air_dead if name in AIR_FEATURES and air_dead not in (None, AIR_OFF) else dead
            if zone is not None:
                floor = float(np.percentile(x_train[clean_train, j], zone))
                knots[name] = quantile_knots(x_train[:, j], floor=floor)
        quality_basis = model.basis(x_train, knots)
        air_columns = _columns_of(knots, AIR_FEATURES, names) if air_dead == AIR_OFF else np.zeros(0, int)
        quality_basis[:, air_columns] = 0.0
        head: dict
        if form == "worst_kind":
            intercepts, weights = fit_worst_kind(quality_basis, severities, l2, pairs, pair_weight)
            weights[air_columns, :] = 0.0  # exactly: at run time these columns are not zero
            head = {
                "form": form,
                "kinds": list(FINDING_KINDS),
                "intercepts": intercepts.tolist(),
                "weights": weights.tolist(),
                "knots": knots,
            }
        else:
            target_values = _quality_target(train, target)
            intercept, weight = fit_quality(quality_basis, target_values, l2, pairs, pair_weight)
            weight[air_columns] = 0.0  # exactly: at run time these columns are not zero
            head = {"intercept": intercept, "weights": weight.tolist(), "knots": knots}
        head.update(quality_fill)
        raw = VerdictModel({**document, "quality": {**head, "calibration": _identity()}}).quality(
            x_validation
        )
        kx, ky = isotonic_knots(raw, validation_label)
        head["calibration"] = {"x": kx, "y": ky}
        quality = VerdictModel({**document, "quality": head}).quality(x_validation)
        score, value, change, p95 = selection_score(quality, validation)
        selection["quality"].append(
            {
                "form": form,
                "pair_weight": pair_weight,
                "target": target,
                "l2": l2,
                "dead_zone_clean_percentile": dead,
                "air_dead_zone_clean_percentile": air_dead,
                "auc": round(value, 4),
                "clean_change_mean": round(change, 2),
                "clean_change_p95": round(p95, 2),
            }
        )
        if best is None or score > best[0]:
            setting = {
                "form": form,
                "target": target,
                "l2": l2,
                "dead_zone": dead,
                "air_dead_zone": air_dead,
                "pair_weight": pair_weight,
            }
            best = (score, setting, head)
    assert best is not None
    document["quality"] = {**best[2], "setting": best[1]}

    fitted = []
    clean_validation = [row for row in validation if _is_clean(row)]
    for l2 in FINDING_GRID:
        heads = {}
        for kind in FINDING_KINDS:
            a, v = fit_finding(basis, np.array([row["severities"][kind] for row in train]), l2=l2)
            v[unread] = 0.0  # exactly: at run time these columns are not zero
            heads[kind] = {"intercept": a, "weights": v.tolist(), "threshold": 50.0}
        with_heads = VerdictModel({**document, "findings": heads})
        accuracy, _ = _kind_accuracy(with_heads, validation)
        failed = clean_copies_failed(with_heads, clean_validation)
        selection["findings"].append({"l2": l2, "kind_accuracy": round(accuracy, 4), "clean_failed": failed})
        fitted.append((accuracy, l2, heads))
    best_findings = fitted[best_finding_setting(selection["findings"])]
    document["findings"] = best_findings[2]
    document["findings_l2"] = best_findings[1]
    labelled = [
        (n, FINDING_KINDS.index(KIND_OF_CORRUPTION[row["single_kind"]]))
        for n, row in enumerate(train)
        if row["single_kind"] and _worst(row) >= KIND_HEAD_MIN_SEVERITY
    ]
    rows_k, classes = np.array([n for n, _ in labelled]), np.array([c for _, c in labelled])
    best_kind: tuple[float, dict | None] = (best_findings[0], None)
    for l2 in KIND_GRID:
        intercepts, weights = fit_kind(kind_basis[rows_k], classes, len(FINDING_KINDS), l2=l2)
        weights[kind_unread, :] = 0.0
        head = {"kinds": list(FINDING_KINDS), "intercepts": intercepts.tolist(), "weights": weights.tolist()}
        accuracy, _ = _kind_accuracy(VerdictModel({**document, "kind_head": head}), validation)
        selection["kind_head"].append({"l2": l2, "kind_accuracy": round(accuracy, 4)})
        if accuracy > max(best_kind[0], best_findings[0] + KIND_HEAD_MARGIN):
            best_kind = (accuracy, {**head, "l2": l2})
    if best_kind[1] is not None:
        document["kind_head"] = best_kind[1]
    selection["thresholds"] = _set_thresholds(document, validation)
    document["suggested_limits"] = suggest_limits(VerdictModel(document), validation)
    document.update(
        data_key=generate.folder_key(folder),
        training_rows={"train": len(train), "validation": len(validation)},
        label="qcgate.models.corruption.quality_label of the copy against its clean base (0-100)",
        selection=selection,
    )
    return document, selection


def clean_copies_failed(model: VerdictModel, clean: list[dict]) -> int:
    """How many of the ``clean`` copies a finding alone fails (severity at or above
    :data:`SEVERITY_FAIL`): a clean series must never fail (``tests/test_verdict.py`` checks the
    shipped model on its validation copies)."""
    if not clean:
        return 0
    return int(np.sum(_largest_reported(model, _matrix(model, clean)) >= SEVERITY_FAIL))


def _largest_reported(model: VerdictModel, x: np.ndarray) -> np.ndarray:
    """Per row of features ``x``, the largest finding severity at or above its kind's reporting
    threshold (0 where no finding is reported): what the flag's severity limits are compared with."""
    severities = model.severities(x)
    thresholds = {kind: model.document["findings"][kind]["threshold"] for kind in severities}
    return np.max(np.stack([np.where(v >= thresholds[k], v, 0.0) for k, v in severities.items()]), axis=0)


def best_finding_setting(records: list[dict]) -> int:
    """The index of the finding setting to ship: the best kind accuracy among those that fail no
    clean validation copy, or among all if every one does.

    Why: a coarse, anisotropic clean validation base sits 2 points under the fail severity of the
    undersampling head (68 of 70 under 0.7.1), and three refits on 2026-12-05 tipped it over by
    refitting that head, each failing the suite's own check after its data and fit were spent.
    """
    eligible = [n for n, record in enumerate(records) if record["clean_failed"] == 0] or list(
        range(len(records))
    )
    return max(eligible, key=lambda n: (records[n]["kind_accuracy"], -n))


def air_fill_from_anatomy(rows: np.ndarray) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(intercept, weights >= 0 on the anatomy features) per air feature, least squares over
    ``rows`` (training rows whose air was measured): the fill a stack without usable air gets.

    A constant fill (what clean air gives) makes zero-filling the air of a noisy or blurred image
    look like cleaning it; predicting the air from the anatomy keeps what the anatomy says. The
    weights are non-negative so that a feature getting worse never improves the filled air.
    """
    anatomy = [j for j, name in enumerate(FEATURE_NAMES) if name not in AIR_FEATURES]
    design = np.column_stack([rows[:, anatomy], np.ones(len(rows)), -np.ones(len(rows))])
    fill, weights = {}, {}
    for name in AIR_FEATURES:
        solution, _ = nnls(design, rows[:, FEATURE_NAMES.index(name)])
        fill[name] = round(float(solution[-2] - solution[-1]), 6)
        weights[name] = {
            FEATURE_NAMES[j]: round(float(w), 6) for j, w in zip(anatomy, solution[:-2], strict=True) if w > 0
        }
    return fill, weights


def _columns_of(knots: dict, names: tuple[str, ...], order: tuple[str, ...]) -> np.ndarray:
    """The basis columns (ramps) of the features ``names`` under ``knots``, features in ``order``."""
    columns, start = [], 0
    for name in order:
        width = len(knots[name]) - 1
        if name in names:
            columns.extend(range(start, start + width))
        start += width
    return np.array(columns, dtype=int)


def _identity() -> dict:
    return {"x": [0.0, 100.0], "y": [0.0, 100.0]}


def _set_thresholds(document: dict, validation: list[dict]) -> dict:
    """Per-kind thresholds: the same quantile ``p`` of every kind's severity on clean validation
    copies, the lowest ``p`` at which at most :data:`CLEAN_FINDING_RATE` of them get any finding."""
    clean = [row for row in validation if _is_clean(row)]
    model = VerdictModel(document)
    severities = model.severities(_matrix(model, clean))
    for p in np.arange(90.0, 100.01, 0.25):
        thresholds = {k: max(MIN_THRESHOLD, float(np.percentile(v, p))) for k, v in severities.items()}
        flagged = np.zeros(len(clean), bool)
        for kind, values in severities.items():
            flagged |= values >= thresholds[kind]
        if flagged.mean() <= CLEAN_FINDING_RATE:
            break
    for kind, threshold in thresholds.items():
        document["findings"][kind]["threshold"] = round(threshold, 2)
    return {"clean_percentile": float(p), "clean_rate_with_a_finding": round(float(flagged.mean()), 4)}


CLEAN_PASS_RATE = 0.97  # warn limits pass at least this share of clean/mild validation copies
SEVERITY_WARN, SEVERITY_FAIL = 40.0, 70.0  # finding severities that warn and fail (kept fixed)


def suggest_limits(model: VerdictModel, validation: list[dict]) -> dict:
    """The default ``verdict_limits`` for this model, by the rule of docs/verdict.md
    (:func:`quality_limits`), on validation copies (never the real evaluation images). The
    settings' defaults must equal the shipped model's (a test checks it): a new model's quality
    scale needs its own limits."""
    x = _matrix(model, validation)
    quality = quality_of_rows(model, validation)
    reported = _largest_reported(model, x)
    worst = np.array([_worst(row) for row in validation])
    judged = np.array([row["single_kind"] is not None or _is_clean(row) for row in validation])
    mild, severe, clean = judged & (worst <= MILD), judged & (worst >= SEVERE), worst == 0.0
    warn, fail = quality_limits(quality, reported, mild, judged & (worst <= MODERATE))
    warned = (quality < warn) | (reported >= SEVERITY_WARN)
    failed = (quality < fail) | (reported >= SEVERITY_FAIL)
    return {
        "quality_warn": float(warn),
        "quality_fail": float(fail),
        "severity_warn": SEVERITY_WARN,
        "severity_fail": SEVERITY_FAIL,
        "validation": {
            "clean_mild_passed": round(float(np.mean(~warned[mild])), 4),
            "severe_warned_or_failed": round(float(np.mean(warned[severe])), 4),
            "severe_failed": round(float(np.mean(failed[severe])), 4),
            "clean_failed": round(float(np.mean(failed[clean])), 4),
        },
    }


def quality_limits(
    quality: np.ndarray, reported: np.ndarray, mild: np.ndarray, moderate: np.ndarray
) -> tuple[int, int]:
    """(warn, fail) quality limits from copies' ``quality``, their largest ``reported`` finding
    severity and masks of clean/mild and of at most moderately damaged copies.

    ``warn``: the highest whole number at which at least :data:`CLEAN_PASS_RATE` of the clean/mild
    copies pass (a finding at :data:`SEVERITY_WARN` warns too). ``fail``: the highest at or below
    ``warn`` under which no moderately damaged copy's quality falls, so only clearly
    non-diagnostic series fail on quality. A moderate copy that a finding fails does not pull
    ``fail`` down: findings fail on their own severity limit, whatever the quality limit.
    """
    passed_at = [np.mean(~((quality < limit) | (reported >= SEVERITY_WARN))[mild]) for limit in range(101)]
    warn = max((limit for limit in range(101) if passed_at[limit] >= CLEAN_PASS_RATE), default=0)
    judged = moderate & (reported < SEVERITY_FAIL)
    lowest = float(quality[judged].min()) if judged.any() else 100.0
    return warn, min(warn, int(np.floor(lowest)))


# ---- evidence --------------------------------------------------------------------------------


def held_out(model: VerdictModel, folder: Path) -> dict:
    """Figures on the test split (seeds never used for fitting or selection)."""
    test = generate.load_split(folder, "test")
    x = _matrix(model, test)
    quality = quality_of_rows(model, test)
    labels = np.array([row["label"] for row in test])
    severe, mild = _severe_vs_mild(quality, test)
    all_severe = [float(q) for q, row in zip(quality, test, strict=True) if _worst(row) >= SEVERE]
    per_kind = {}
    for kind in sorted({row["single_kind"] for row in test if row["single_kind"]}):
        positive = [
            float(q)
            for q, row in zip(quality, test, strict=True)
            if row["single_kind"] == kind and _worst(row) >= SEVERE
        ]
        per_kind[kind] = round(auc(mild, positive), 3) if positive else None
    accuracy, confusion = _kind_accuracy(model, test)
    severities = model.severities(x)
    reported = []
    for n, row in enumerate(test):
        if row["single_kind"] and _worst(row) >= SEVERE:
            kind = KIND_OF_CORRUPTION[row["single_kind"]]
            reported.append(severities[kind][n] >= model.document["findings"][kind]["threshold"])
    clean = np.flatnonzero([_is_clean(row) for row in test])
    any_finding = np.zeros(len(test), bool)
    for kind, values in severities.items():
        any_finding |= values >= model.document["findings"][kind]["threshold"]
    change = _clean_pair_change(quality, test)
    return {
        "rows": len(test),
        "auc_severe_vs_clean_mild": round(auc(mild, severe), 4),
        "auc_all_severe_incl_combinations_vs_clean_mild": round(auc(mild, all_severe), 4),
        "auc_per_kind_vs_clean_mild": per_kind,
        "n_severe": len(severe),
        "n_clean_mild": len(mild),
        "srcc_quality_label": round(srcc(quality.tolist(), labels.tolist()), 4),
        "mae_quality_label": round(float(np.mean(np.abs(quality - labels))), 2),
        "clean_quality_p5_median": [
            round(float(np.percentile(quality[clean], 5)), 1),
            round(float(np.median(quality[clean])), 1),
        ],
        "clean_copies_with_a_finding": round(float(any_finding[clean].mean()), 4),
        "clean_pair_change_mean_max": [round(float(change.mean()), 2), round(float(change.max()), 2)],
        "finding_kind_accuracy_single_severe": round(accuracy, 3),
        "right_kind_reported_single_severe": round(float(np.mean(reported)), 3),
        "finding_confusion": confusion,
    }


def _assess(model: VerdictModel, volume: np.ndarray) -> float | None:
    """Quality of a (S, R, C) or (R, C) volume with the learned scores the service would give it."""
    learned = None
    if model.learned_inputs:
        slices = volume if volume.ndim == 3 else volume[None]
        per_slice = [learned_scores(image) for image in slices]
        learned = {name: [scores[name] for scores in per_slice] for name in model.learned_inputs}
    return model.assess(volume, learned=learned).quality


def invariance(model: VerdictModel, seeds: range) -> dict:
    """|quality(re-stored) - quality(as synthesised)| per benign re-storing, clean test images."""
    diffs: dict[str, list[float]] = {name: [] for name in (*BENIGN, "slice_vs_slab")}
    for seed in seeds:
        base, foreground = make_base(seed)
        volume = np.abs(base)[None]
        reference = _assess(model, volume)
        for name, variant in benign_variants(volume, foreground[None]).items():
            quality = _assess(model, variant)
            diffs[name].append(100.0 if quality is None or reference is None else abs(quality - reference))
        slab = synthesize_volume(seed, CONFIG, shape=(9, 160, 160))
        rng = np.random.default_rng(seed)
        sigma = float(np.mean(slab.magnitude[slab.foreground])) / 30.0
        noise = rng.standard_normal((2, *slab.image.shape))
        noisy = np.abs(slab.image + sigma * (noise[0] + 1j * noise[1]))
        whole, one = _assess(model, noisy), _assess(model, noisy[4])
        diffs["slice_vs_slab"].append(100.0 if whole is None or one is None else abs(whole - one))
    return {
        name: {
            "max": round(max(v), 2),
            "p95": round(float(np.percentile(v, 95)), 2),
            "mean": round(float(np.mean(v)), 2),
        }
        for name, v in diffs.items()
    }


def cost(model: VerdictModel, repeats: int = 3) -> dict:
    """Seconds for the whole verdict (features and model) of a 176x256x256 float32 volume."""
    rng = np.random.default_rng(0)
    r, c = np.mgrid[:256, :256] / 256 - 0.5
    head = ((r / 0.4) ** 2 + (c / 0.33) ** 2 < 1).astype(np.float32)
    volume = np.abs(head[None] + 0.03 * rng.standard_normal((176, 256, 256), dtype=np.float32))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.assess(volume)
        times.append(time.perf_counter() - start)
    return {"verdict_176x256x256_s_median": round(float(np.median(times)), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA / "verdict.json", help="model file")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="root of the data cache")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--invariance-images", type=int, default=24)
    parser.add_argument(
        "--learned", nargs="*", choices=LEARNED_INPUTS, default=list(LEARNED), help="learned metrics read"
    )
    parser.add_argument("--learned-findings", action="store_true", help="the finding heads read them too")
    parser.add_argument("--learned-kind-head", action="store_true", help="the softmax kind head reads them")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder = generate.generate(args.data, args.jobs)
    document, _ = fit(folder, tuple(args.learned), args.learned_findings, args.learned_kind_head)
    model = VerdictModel(document)
    document["held_out_test"] = held_out(model, folder)
    test_seeds = generate.SPLITS["test"]
    document["invariance_points"] = invariance(
        model, range(test_seeds.start, test_seeds.start + args.invariance_images)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    report = {
        "model": str(args.out),
        "data": str(folder),
        "selection": document["selection"],
        "held_out": document["held_out_test"],
        "invariance_points": document["invariance_points"],
        "cost": cost(model),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    (folder / "evidence_synthetic.json").write_text(json.dumps(report, indent=1) + "\n")
    sys.stderr.write(json.dumps({k: report[k] for k in ("held_out", "cost", "wall_s")}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
