"""The stored assessment document, read into the typed values a report needs, or refused.

The document is JSON from the store (:meth:`qcgate.assessment.pipeline.SeriesAssessment.document`), so it is
checked once, here, at the boundary: only a finished assessment ("done") is reported, every value is
a finite number and every quality lies within 0-100. Anything else raises
:class:`~qcgate.core.errors.ReportNotBuildable` naming the field. Provenance fields added after a result
was stored (``algorithms``, ``thresholds``) are tolerated as absent, so older results stay reportable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID

from qcgate.core.errors import ReportNotBuildable
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.metrics.base import Algorithm


@dataclass(frozen=True)
class ReportedMetric:
    """One series-level metric: its value and, where a calibration exists, its 0-100 quality."""

    name: str
    value: float
    quality: float | None


@dataclass(frozen=True)
class ReportedResult:
    """What an SR or KOS says about one series, taken from its stored assessment."""

    instances: int
    flag: Flag | None
    reasons: tuple[str, ...]
    metrics: tuple[ReportedMetric, ...]
    software_version: str
    metric_versions: tuple[tuple[str, str], ...]
    algorithms: tuple[Algorithm, ...]
    thresholds: tuple[tuple[str, Mapping[str, Any]], ...]

    @property
    def overall_rating(self) -> float | None:
        """The lowest calibrated quality of any metric, or None when no metric is calibrated.

        The lowest, because one bad aspect (noise, blur, ghosting) makes an image hard to read however
        good the others are; and only calibrated qualities, because raw scores have no common scale.
        """
        qualities = [metric.quality for metric in self.metrics if metric.quality is not None]
        return min(qualities) if qualities else None


def read_result(document: Mapping[str, Any]) -> ReportedResult:
    """Check ``document`` and return its reportable content; ReportNotBuildable says what is wrong."""
    status = document.get("status")
    if status != SeriesStatus.DONE:
        raise ReportNotBuildable(f'only a "done" assessment can be reported, this one is "{status}"')
    try:
        provenance = document["provenance"]
        metrics = tuple(_metric(name, entry) for name, entry in document["metrics"].items())
        return ReportedResult(
            instances=int(document["instances"]),
            flag=_flag(document["flag"]),
            reasons=tuple(str(reason) for reason in document["reasons"]),
            metrics=metrics,
            software_version=str(provenance["software_version"]),
            metric_versions=tuple((str(k), str(v)) for k, v in provenance.get("metric_versions", {}).items()),
            algorithms=tuple(_algorithm(entry) for entry in provenance.get("algorithms", [])),
            thresholds=tuple(provenance.get("thresholds", {}).items()),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportNotBuildable(f"the assessment document is malformed: {exc!r}") from exc


def _algorithm(entry: Mapping[str, Any]) -> Algorithm:
    algorithm = Algorithm(**entry)
    if not UID(algorithm.device_uid).is_valid:
        raise ReportNotBuildable(f"{algorithm.name}: invalid Device UID {algorithm.device_uid!r}")
    return algorithm


def _flag(value: Any) -> Flag | None:
    if value is None:
        return None
    try:
        return Flag(value)
    except ValueError:
        raise ReportNotBuildable(f'flag "{value}" is not one of {", ".join(Flag)}') from None


def _metric(name: str, entry: Mapping[str, Any]) -> ReportedMetric:
    value = _number(entry["value"], f"metrics.{name}.value")
    quality = entry.get("quality")
    if quality is not None:
        quality = _number(quality, f"metrics.{name}.quality")
        if not 0.0 <= quality <= 100.0:
            raise ReportNotBuildable(f"metrics.{name}.quality {quality} lies outside 0-100")
    return ReportedMetric(name, value, quality)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportNotBuildable(f"{field} must be a finite number, got {value!r}")
    return float(value)
