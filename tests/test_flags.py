"""Flags from thresholds: each metric in its own direction, learned metrics on their 0-100 quality."""

from __future__ import annotations

import pytest

from qcgate.core.outcomes import Flag
from qcgate.core.settings import Settings, Threshold
from qcgate.metrics.base import MetricResult
from qcgate.metrics.flags import flag_metric, overall_flag

LIMITS = Threshold(warn=3.0, fail=2.0)
QUALITY_LIMITS = Threshold(warn=60.0, fail=40.0, scale="quality")


@pytest.mark.parametrize(
    ("value", "expected"), [(4.0, Flag.PASS), (3.0, Flag.PASS), (2.5, Flag.WARN), (1.0, Flag.FAIL)]
)
def test_higher_is_better_flags_below_the_limits(value: float, expected: Flag) -> None:
    flag, reason = flag_metric(MetricResult("snrd", value, True), LIMITS)
    assert flag is expected
    assert (reason is None) == (expected is Flag.PASS)


def test_lower_is_better_flags_above_the_limits() -> None:
    limits = Threshold(warn=0.1, fail=0.2)
    assert flag_metric(MetricResult("gsr", 0.05, False), limits)[0] is Flag.PASS
    flag, reason = flag_metric(MetricResult("gsr", 0.25, False), limits)
    assert flag is Flag.FAIL
    assert reason == "gsr 0.25 is above the fail limit 0.2 (lower is better)"


def test_quality_scale_judges_the_calibrated_quality_not_the_raw_score() -> None:
    # A lower-is-better raw score of 0.9 would fail on its own scale; its quality of 70 passes.
    assert flag_metric(MetricResult("msm", 0.9, False, quality=70.0), QUALITY_LIMITS)[0] is Flag.PASS
    flag, reason = flag_metric(MetricResult("msm", 0.01, False, quality=50.0), QUALITY_LIMITS)
    assert flag is Flag.WARN
    assert reason == "msm quality 50 is below the warn limit 60 (higher is better)"


def test_an_uncalibrated_result_cannot_cross_a_quality_threshold() -> None:
    assert flag_metric(MetricResult("msm", 5.0, False, quality=None), QUALITY_LIMITS) == (Flag.PASS, None)


def test_overall_flag_is_the_worst_and_lists_every_reason() -> None:
    results = [
        MetricResult("snrd", 2.5, True),
        MetricResult("msm", 0.3, False, quality=30.0),
        MetricResult("efc", 0.9, False),  # no threshold: reported, never flags
    ]
    flag, reasons = overall_flag(results, {"snrd": LIMITS, "msm": QUALITY_LIMITS})
    assert flag is Flag.FAIL
    assert len(reasons) == 2


def test_learned_metrics_do_not_flag_by_default() -> None:
    # Their synthetic calibration does not transfer to real clean series (docs/training.md#thresholds).
    thresholds = Settings().thresholds
    assert not {"msm", "hysnet", "rank_effnet"} & set(thresholds)
    assert all(threshold.scale == "value" for threshold in thresholds.values())
