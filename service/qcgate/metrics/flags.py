"""Turn metric values into pass/warn/fail with reasons a person can act on.

The overall flag is the worst flag of any metric that has a threshold; metrics without a threshold
are reported but never flag (MRIQC's users ask for thresholds, but "there is no rule of thumb" for
every measure on every scanner: each default comes with its provenance in ``docs/thresholds.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from qcgate.core.outcomes import Flag
from qcgate.core.settings import Threshold
from qcgate.metrics.base import MetricResult

_SEVERITY = {Flag.PASS: 0, Flag.WARN: 1, Flag.FAIL: 2}


def _crosses(value: float, limit: float | None, higher_is_better: bool) -> bool:
    if limit is None:
        return False
    return value < limit if higher_is_better else value > limit


def flag_metric(result: MetricResult, threshold: Threshold) -> tuple[Flag, str | None]:
    """The flag of one metric and, unless it passes, the reason in words.

    A quality-scale threshold on an uncalibrated result cannot be judged: it passes, and the
    result's missing ``quality`` says why.
    """
    if threshold.scale == "quality":
        if result.quality is None:
            return Flag.PASS, None
        value, higher_is_better, what = result.quality, True, f"{result.name} quality"
    else:
        value, higher_is_better, what = result.value, result.higher_is_better, result.name
    direction, side = ("higher is better", "below") if higher_is_better else ("lower is better", "above")
    for flag, limit in ((Flag.FAIL, threshold.fail), (Flag.WARN, threshold.warn)):
        if _crosses(value, limit, higher_is_better):
            return flag, f"{what} {value:.3g} is {side} the {flag.value} limit {limit:g} ({direction})"
    return Flag.PASS, None


def worse_flag(first: Flag, second: Flag) -> Flag:
    """The more severe of two flags (fail > warn > pass)."""
    return first if _SEVERITY[first] >= _SEVERITY[second] else second


def overall_flag(
    results: Iterable[MetricResult], thresholds: Mapping[str, Threshold]
) -> tuple[Flag, list[str]]:
    """Worst flag over the thresholded metrics, with one reason per metric that did not pass."""
    worst, reasons = Flag.PASS, []
    for result in results:
        threshold = thresholds.get(result.name)
        if threshold is None:
            continue
        flag, reason = flag_metric(result, threshold)
        if reason:
            reasons.append(reason)
        worst = worse_flag(worst, flag)
    return worst, reasons
