"""Score one series from its files: read, build stacks, run every metric suite, flag.

Knows nothing of Celery, the database or HTTP; the worker task, ``qcgate score`` and the
benchmarks all call :func:`assess_series` so they cannot disagree.

Which stacks are scored: when a series holds at least one stack of ``MIN_VOLUME_SLICES`` slices,
thinner stacks (localizers of a 3-plane scout) are skipped with a reason; otherwise every stack is
scored. A series value is the median over its scored stacks (the volumes of a 4D series, or the
orientations of a mixed series); each stack's own values are kept in the report.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pydicom

from qcgate.assessment.document import AssessmentDocument, MetricValue, Provenance, StackMetric, StackResult
from qcgate.assessment.eligibility import assessable_instances
from qcgate.assessment.verdict import (
    SeriesVerdict,
    acquired_grids,
    judge_stacks,
    model_identity,
    shipped_verdict_model,
    verdict_flag,
)
from qcgate.contract.verdict_model import VerdictModel
from qcgate.core import __version__
from qcgate.core.errors import NotAssessable
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import SeriesFilter, Threshold, VerdictLimits
from qcgate.imaging.volume import Stack, build_stacks
from qcgate.metrics.base import MetricResult, MetricSuite
from qcgate.metrics.flags import overall_flag, worse_flag

MIN_VOLUME_SLICES = 3


@dataclass(frozen=True)
class StackReport:
    label: str
    shape: tuple[int, int, int]
    scored: bool
    skipped_reason: str = ""
    metrics: dict[str, MetricResult] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesAssessment:
    """Everything a series' assessment produced, and :attr:`result`, its validated document.

    The document is built (and so validated) once, on construction; :meth:`document` is its JSON.
    """

    outcome: SeriesStatus
    flag: Flag | None
    reasons: list[str]
    metrics: dict[str, MetricResult]
    stacks: list[StackReport]
    provenance: dict[str, Any]
    instances: int
    verdict: SeriesVerdict = SeriesVerdict(None, ())
    result: AssessmentDocument = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        document = AssessmentDocument(
            status=self.outcome,
            instances=self.instances,
            flag=self.flag,
            quality=self.verdict.quality,
            findings=list(self.verdict.findings),
            reasons=self.reasons,
            metrics={name: _metric(result) for name, result in self.metrics.items()},
            stacks=[_stack(stack) for stack in self.stacks],
            provenance=Provenance.model_validate(self.provenance),
        )
        object.__setattr__(self, "result", document)  # frozen: set once, here

    def document(self) -> dict[str, Any]:
        """The result's JSON form, as stored (a fresh dict each call)."""
        return self.result.to_json()


def _metric(result: MetricResult) -> MetricValue:
    return MetricValue(value=result.value, higher_is_better=result.higher_is_better, quality=result.quality)


def _stack(stack: StackReport) -> StackResult:
    return StackResult(
        label=stack.label,
        shape=stack.shape,
        scored=stack.scored,
        skipped_reason=stack.skipped_reason,
        metrics={name: _stack_metric(result) for name, result in stack.metrics.items()},
    )


def _stack_metric(result: MetricResult) -> StackMetric:
    per_slice = None
    if result.per_slice is not None:
        # JSON has no NaN: a slice where the metric is undefined (no foreground) becomes null.
        per_slice = [value if math.isfinite(value) else None for value in result.per_slice]
    return StackMetric(
        value=result.value,
        higher_is_better=result.higher_is_better,
        quality=result.quality,
        per_slice=per_slice,
    )


def _provenance(
    suites: Sequence[MetricSuite],
    thresholds: Mapping[str, Threshold],
    verdict_model: VerdictModel,
    limits: VerdictLimits,
    limits_source: str,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "software_version": __version__,
        "metric_versions": {suite.name: suite.version for suite in suites},
        "algorithms": [asdict(suite.algorithm) for suite in suites if suite.algorithm is not None],
        "thresholds": {name: threshold.model_dump() for name, threshold in thresholds.items()},
        # limits_source only where the limits are not the settings' verdict_limits (results as before)
        "verdict": {"model": model_identity(verdict_model), "limits": limits.model_dump()}
        | ({"limits_source": limits_source} if limits_source != "settings" else {}),
        **extra,
    }


def _select_stacks(stacks: list[Stack]) -> tuple[list[Stack], list[StackReport]]:
    has_volume = any(stack.voxels.shape[0] >= MIN_VOLUME_SLICES for stack in stacks)
    chosen, skipped = [], []
    for stack in stacks:
        if has_volume and stack.voxels.shape[0] < MIN_VOLUME_SLICES:
            reason = f"{stack.voxels.shape[0]}-slice stack beside volumes (localizer) is not scored"
            skipped.append(StackReport(stack.label, stack.voxels.shape, scored=False, skipped_reason=reason))
        else:
            chosen.append(stack)
    return chosen, skipped


def _series_value(per_stack: list[MetricResult]) -> MetricResult:
    first = per_stack[0]
    if len(per_stack) == 1:
        return MetricResult(first.name, first.value, first.higher_is_better, first.quality)
    qualities = [r.quality for r in per_stack if r.quality is not None]
    return MetricResult(
        first.name,
        statistics.median(r.value for r in per_stack),
        first.higher_is_better,
        statistics.median(qualities) if qualities else None,
    )


def failed_assessment(reason: str, instances: int) -> SeriesAssessment:
    return SeriesAssessment(
        SeriesStatus.FAILED, None, [reason], {}, [], {"software_version": __version__}, instances
    )


def read_datasets(paths: Sequence[Path]) -> list[pydicom.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [pydicom.dcmread(path) for path in paths]


def assess_series(
    paths: Sequence[Path],
    suites: Sequence[MetricSuite],
    thresholds: Mapping[str, Threshold],
    *,
    limits: VerdictLimits | None = None,
    series_filter: SeriesFilter | None = None,
    verdict_model: VerdictModel | None = None,
    limits_source: str = "settings",
    provenance_extra: Mapping[str, Any] | None = None,
    acquired_grid: bool = False,
) -> SeriesAssessment:
    """Assess one series' instances; not-assessable series come back as such, never as an exception.

    The flag is the worse of the verdict's (``limits``; the shipped verdict model unless one is given)
    and the site's per-metric ``thresholds`` (none by default). Instances ``series_filter`` rules out
    (derived maps, localizers, high-b diffusion) are not judged; a series of nothing else is
    ``not_assessable`` with the reason. ``limits_source`` says where ``limits`` came from (settings,
    pinned, or the version of the site limits learned from reviews); ``provenance_extra`` adds the
    caller's own facts (the worker: report-only mode) to the provenance. With ``acquired_grid``
    (the setting ``verdict_acquired_grid``) the verdict judges interpolated stacks on the grid their
    header says was acquired, and the provenance names those stacks and their grids.
    """
    limits = limits or VerdictLimits()
    verdict_model = verdict_model or shipped_verdict_model()
    provenance = _provenance(suites, thresholds, verdict_model, limits, limits_source, provenance_extra or {})
    series_filter = series_filter or SeriesFilter()
    try:
        datasets, excluded = assessable_instances(read_datasets(paths), series_filter)
        if not datasets:
            raise NotAssessable("; ".join(excluded))
        chosen, reports = _select_stacks(build_stacks(datasets))
    except NotAssessable as exc:
        return SeriesAssessment(SeriesStatus.NOT_ASSESSABLE, None, [str(exc)], {}, [], provenance, len(paths))
    per_name: dict[str, list[MetricResult]] = {}
    per_stack: list[dict[str, MetricResult]] = []
    uncomputed: list[str] = []
    for stack in chosen:
        stack_results: dict[str, MetricResult] = {}
        for suite in suites:
            try:
                results = suite.evaluate(stack)
            except NotAssessable as exc:
                # A measure undefined for this image (zero-filled air has no noise to measure) is left
                # out with its reason; it does not make the series unjudgeable: the verdict decides that.
                uncomputed.append(f"{suite.name} not computed for {stack.label}: {exc}")
                continue
            for result in results:
                stack_results[result.name] = result
                per_name.setdefault(result.name, []).append(result)
        per_stack.append(stack_results)
        reports.append(StackReport(stack.label, stack.voxels.shape, scored=True, metrics=stack_results))
    metrics = {name: _series_value(results) for name, results in per_name.items()}
    verdict = judge_stacks(chosen, verdict_model, per_stack, acquired_grid=acquired_grid)
    if acquired_grid:
        provenance["verdict"]["acquired_grid"] = acquired_grids(chosen)
    if verdict.quality is None:
        reason = "no stack has anatomy the verdict can judge (no foreground found)"
        return SeriesAssessment(
            SeriesStatus.NOT_ASSESSABLE, None, [reason, *uncomputed], metrics, reports, provenance, len(paths)
        )
    flag, reasons = verdict_flag(verdict, limits)
    site_flag, site_reasons = overall_flag(metrics.values(), thresholds)
    flag = worse_flag(flag, site_flag)
    reasons += site_reasons
    reasons += uncomputed
    reasons += [report.skipped_reason for report in reports if not report.scored]
    reasons += [f"not judged: {reason}" for reason in excluded]
    return SeriesAssessment(
        SeriesStatus.DONE, flag, reasons, metrics, reports, provenance, len(paths), verdict
    )
