"""The benchmark's statistics on data whose answers are known: correlations, logistic PLCC, ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qcgate.bench.quality.agreement import (
    MIN_POINTS_4PL,
    MIN_POINTS_5PL,
    mean_finite,
    oriented,
    plcc,
    ranking_accuracy,
    srcc,
)
from qcgate.bench.quality.analysis import OVERALL, analyse, group_rows, reader_pairs
from qcgate.bench.quality.scoring import ScoreRow


def _sigmoid_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, n)
    return x, 1.0 / (1.0 + np.exp(-(x - 0.5) * 12.0)) + rng.normal(0.0, 0.01, n)


def test_srcc_of_monotonic_data_is_one_and_of_reversed_data_minus_one() -> None:
    x = np.arange(10.0)
    assert srcc(x, x**3).value == pytest.approx(1.0)
    assert srcc(x, -np.exp(x)).value == pytest.approx(-1.0)


def test_srcc_ignores_non_finite_pairs_and_is_nan_when_undefined() -> None:
    result = srcc([1.0, 2.0, np.nan, 4.0, 5.0], [1.0, 2.0, 3.0, np.inf, 6.0])
    assert (result.value, result.n) == (pytest.approx(1.0), 3)
    assert math.isnan(srcc([1.0, 2.0], [1.0, 2.0]).value)  # too few points
    assert math.isnan(srcc([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).value)  # a constant side


def test_plcc_fits_a_logistic_and_recovers_a_sigmoid_relation() -> None:
    x, y = _sigmoid_data(40)
    fitted = plcc(x, y)
    assert fitted.mapping == "logistic-5"
    assert fitted.value > 0.99
    assert fitted.value > abs(float(np.corrcoef(x, y)[0, 1]))  # the fit helps a non-linear relation


def test_plcc_is_negative_for_a_metric_moving_against_the_target() -> None:
    x, y = _sigmoid_data(40)
    assert plcc(-x, y).value < -0.99


def test_plcc_does_not_depend_on_the_metric_scale() -> None:
    x, y = _sigmoid_data(40)
    assert plcc(x * 1e6 + 3.0, y).value == pytest.approx(plcc(x, y).value, abs=1e-6)


def test_plcc_uses_fewer_parameters_when_points_are_few() -> None:
    x, y = _sigmoid_data(MIN_POINTS_5PL - 1)
    assert plcc(x, y).mapping == "logistic-4"
    x, y = _sigmoid_data(MIN_POINTS_4PL - 1)
    linear = plcc(x, y)
    assert linear.mapping == "linear"
    assert linear.value == pytest.approx(float(np.corrcoef(x, y)[0, 1]))


def test_oriented_negates_lower_is_better_metrics() -> None:
    assert oriented([1.0, 2.0], higher_is_better=False).tolist() == [-1.0, -2.0]
    assert oriented([1.0, 2.0], higher_is_better=True).tolist() == [1.0, 2.0]


def test_ranking_accuracy_counts_agreements_and_ties_as_half() -> None:
    first, second = [3.0, 1.0, 2.0, 5.0], [1.0, 2.0, 2.0, 4.0]
    preferred = ["first", "second", "first", "second"]  # right, right, tie, wrong
    result = ranking_accuracy(first, second, preferred)
    assert (result.value, result.n) == (pytest.approx(2.5 / 4), 4)


def test_ranking_accuracy_refuses_similar_pairs_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="preferred"):
        ranking_accuracy([1.0], [2.0], ["similar"])
    with pytest.raises(ValueError, match="same length"):
        ranking_accuracy([1.0, 2.0], [2.0], ["first"])


def test_mean_finite_skips_nan() -> None:
    assert mean_finite([1.0, float("nan"), 3.0]) == 2.0
    assert math.isnan(mean_finite([float("nan")]))


def _row(image: str, copy: str, kind: str, severity: float | None, ssim: float, composite: float) -> ScoreRow:
    """A scored copy whose metrics are known functions of its quality."""
    return ScoreRow(
        image=image,
        anatomy="test",
        copy=copy,
        kind=kind,
        severity=severity,
        corruptions=[],
        reference={"ssim": ssim},
        composite=composite,
        status="done",
        metrics={"ideal": composite, "inverted": composite, "error": 1.0 - ssim},
        higher_is_better={"ideal": True, "inverted": False, "error": False},
    )


def _constructed_rows() -> list[ScoreRow]:
    rows = []
    for image, offset in (("a", 0.0), ("b", 0.05)):
        rows.append(_row(image, "clean", "clean", 0.0, 1.0, 1.0))
        for severity in (0.25, 0.5, 0.75, 1.0):
            quality = 1.0 - severity * (0.6 + offset)
            rows.append(_row(image, f"noise@{severity}", "noise", severity, quality, quality))
        rows.append(_row(image, "random-00", "random", None, 0.5 - offset, 0.5 - offset))
    return rows


def test_groups_put_the_clean_copy_in_every_corruption_type() -> None:
    rows = _constructed_rows()
    groups = group_rows(rows)
    assert list(groups) == ["noise", "random", OVERALL]
    assert {rows[i].copy for i in groups["noise"]} == {
        "clean",
        "noise@0.25",
        "noise@0.5",
        "noise@0.75",
        "noise@1.0",
    }
    assert len(groups[OVERALL]) == len(rows)


def test_reader_pairs_stay_within_one_image() -> None:
    rows = _constructed_rows()
    pairs = reader_pairs(rows, seed=0)
    assert len(pairs) == 2 * (6 * 5 // 2)
    assert all(rows[p.first].image == rows[p.second].image == p.image for p in pairs)


def test_a_metric_equal_to_the_readers_composite_ranks_every_clear_pair_right() -> None:
    results = analyse(_constructed_rows(), seed=0)
    ideal, inverted = results["ideal"][OVERALL], results["inverted"][OVERALL]
    assert ideal["ranking_consensus"] == 1.0
    assert inverted["ranking_consensus"] == 0.0  # declared lower-is-better, so it ranks backwards
    assert ideal["srcc_ssim_within"] == pytest.approx(1.0)
    assert ideal["srcc_severity_within"] == pytest.approx(1.0)
    assert results["error"]["noise"]["srcc_ssim_across"] == pytest.approx(1.0)  # 1 - SSIM, lower is better
    assert 0.5 < ideal["ranking"] < 1.0  # the default reader flips some clear calls
    assert math.isnan(results["ideal"]["random"]["srcc_severity_within"])  # random mixes: no severity
