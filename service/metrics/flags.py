"""Turn metric values into pass/warn/fail with reasons a person can act on.

The overall flag is the worst flag of any metric that has a threshold; metrics without a threshold
are reported but never flag (MRIQC's users ask for thresholds, but "there is no rule of thumb" for
every measure on every scanner: each default comes with its provenance in ``docs/thresholds.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from service.metrics.base import MetricResult
from service.outcomes import Flag
from service.settings import Threshold

_SEVERITY = {Flag.PASS: 0, Flag.WARN: 1, Flag.FAIL: 2}


def _crosses(value: float, limit: float | None, higher_is_better: bool) -> bool:
    if limit is None:
        return False
    return value < limit if higher_is_better else value > limit


def flag_metric(result: MetricResult, threshold: Threshold) -> tuple[Flag, str | None]:
    """The flag of one metric and, unless it passes, the reason in words."""
    direction, side = (
        ("higher is better", "below") if result.higher_is_better else ("lower is better", "above")
    )
    for flag, limit in ((Flag.FAIL, threshold.fail), (Flag.WARN, threshold.warn)):
        if _crosses(result.value, limit, result.higher_is_better):
            return (
                flag,
                f"{result.name} {result.value:.3g} is {side} the {flag.value} limit {limit:g} ({direction})",
            )
    return Flag.PASS, None


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
        if _SEVERITY[flag] > _SEVERITY[worst]:
            worst = flag
    return worst, reasons
