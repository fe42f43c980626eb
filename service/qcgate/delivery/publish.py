"""After an assessment: issue its reports, then record them and the routed delivery jobs (the outbox).

Two steps, so that a retried delivery resends identical bytes under the same SOP Instance UID:

1. :func:`issue_reports`, before the assessment is stored: choose the UIDs, build the SR (and the KOS
   for a failed series), write each file and fsync it. A crash here leaves at most an unreferenced
   file; the re-run issues new UIDs.
2. :func:`record_publication`, inside the transaction that stores the assessment: one ``reports``
   row per file, the routing rules evaluated, one ``delivery_jobs`` row per action. The caller sends
   the jobs' tasks after the commit; the relay re-sends any that get lost.

A re-score's SR continues the series of SRs about the same evaluated series (same SR Series Instance
UID, next Instance Number) and cites the previous SR as its predecessor.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session, sessionmaker

from qcgate.assessment.document import AssessmentDocument
from qcgate.assessment.pipeline import SeriesAssessment
from qcgate.assessment.stored import stored_document
from qcgate.core import __version__
from qcgate.core.delivery_states import REPORT_OF_ACTION, DeliveryAction, DeliveryState, ReportKind
from qcgate.core.errors import ReportNotBuildable
from qcgate.core.observability import instruments
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings
from qcgate.delivery.rules import PlannedAction, SeriesFacts, route
from qcgate.metrics.base import MetricResult
from qcgate.sr import PriorReport, build_quality_issue_selection, build_quality_report
from qcgate.store.delivery_repository import latest_report
from qcgate.store.spool import instance_path, write_durably
from qcgate.store.tables import Assessment, DeliveryJob, Report, Series
from qcgate.synthetic.dicom_series import mr_series_datasets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedReport:
    """A report file written durably under ``sr_dir``, waiting for its row."""

    kind: ReportKind
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    instance_number: int
    path: str  # relative to sr_dir
    size_bytes: int
    predecessor_id: int | None


def read_evidence(files: Sequence[Path]) -> list[Dataset]:
    """Headers of every evaluated instance (no pixels): what the reports cite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [pydicom.dcmread(path, stop_before_pixels=True) for path in files]


def write_report(sr_dir: Path, dataset: Dataset) -> tuple[Path, int]:
    """Write a report durably (fsynced, renamed, directory fsynced) at
    ``<sr_dir>/<study>/<report series>/<SOP Instance UID>.dcm``; returns (path, size)."""
    target = instance_path(
        sr_dir, str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID)
    )
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return target, write_durably(target, [buffer.getvalue()])


def write_issued(
    settings: Settings, kind: ReportKind, dataset: Dataset, instance_number: int, predecessor: Report | None
) -> IssuedReport:
    """Write a built report durably; what its row will record."""
    target, size = write_report(settings.sr_dir, dataset)
    return IssuedReport(
        kind=kind,
        sop_class_uid=str(dataset.SOPClassUID),
        sop_instance_uid=str(dataset.SOPInstanceUID),
        series_instance_uid=str(dataset.SeriesInstanceUID),
        instance_number=instance_number,
        path=str(target.relative_to(settings.sr_dir)),
        size_bytes=size,
        predecessor_id=predecessor.id if predecessor else None,
    )


def discard_reports(settings: Settings, issued: Sequence[IssuedReport]) -> None:
    """Delete report files whose result was not stored (its lease was lost): no row names them, so
    nothing would ever send them, and a kept file would only confuse whoever reads ``sr_dir``."""
    for item in issued:
        (settings.sr_dir / item.path).unlink(missing_ok=True)


def warm_up() -> float:
    """Build one SR of a tiny synthetic series and throw it away; returns the seconds it took.

    highdicom reads its tables of the standard on first use (~0.5 s): a worker pays that at start,
    not in the latency of its first series. Nothing is written.
    """
    started = time.perf_counter()
    evidence = mr_series_datasets(
        np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8), series_description="warm-up"
    )
    document = SeriesAssessment(
        SeriesStatus.DONE,
        Flag.PASS,
        [],
        {"snr": MetricResult("snr", 10.0, True)},
        [],
        {"software_version": __version__},
        len(evidence),
    ).result
    build_quality_report(
        evidence, document, series_instance_uid=generate_uid(), sop_instance_uid=generate_uid()
    )
    return time.perf_counter() - started


def report_row(item: IssuedReport, assessment: Assessment, now: datetime) -> Report:
    """The row of a report written for ``assessment``."""
    return Report(
        series_id=assessment.series_id,
        assessment_id=assessment.id,
        kind=item.kind,
        sop_class_uid=item.sop_class_uid,
        sop_instance_uid=item.sop_instance_uid,
        series_instance_uid=item.series_instance_uid,
        instance_number=item.instance_number,
        path=item.path,
        size_bytes=item.size_bytes,
        predecessor_id=item.predecessor_id,
        created_at=now,
    )


def prior_report(study_instance_uid: str, previous: Report | None) -> PriorReport | None:
    """What a new report cites as the one it supersedes (None for the first)."""
    if previous is None:
        return None
    return PriorReport(
        study_instance_uid, previous.series_instance_uid, previous.sop_instance_uid, previous.sop_class_uid
    )


def next_in_series(previous: Report | None) -> tuple[str, int]:
    """(Series Instance UID, Instance Number) of the next report of one kind about one series."""
    if previous is None:
        return generate_uid(), 1
    return previous.series_instance_uid, previous.instance_number + 1


def issue_reports(
    settings: Settings,
    sessions: sessionmaker[Session],
    series_id: int,
    revision: int,
    document: AssessmentDocument,
    files: Sequence[Path],
    assessed_at: datetime,
) -> list[IssuedReport]:
    """Build and durably write the SR (and KOS) of a finished assessment; [] when none is due.

    A report that cannot be built is logged and left out: the assessment itself is still stored.
    """
    if not settings.sr_enabled or document.status != SeriesStatus.DONE:
        return []
    with sessions() as session:
        series = session.get(Series, series_id)
        if series is None or series.revision != revision:
            return []  # superseded by a newer instance: its own assessment will report
        previous_sr = latest_report(session, series_id, ReportKind.SR)
        previous_kos = latest_report(session, series_id, ReportKind.KOS)
        prior = prior_report(series.study.study_instance_uid, previous_sr)
    issued: list[IssuedReport] = []
    try:
        evidence = read_evidence(files)
        sr_series, sr_number = next_in_series(previous_sr)
        report = build_quality_report(
            evidence,
            document,
            series_instance_uid=sr_series,
            sop_instance_uid=generate_uid(),
            instance_number=sr_number,
            predecessor=prior,
            content_datetime=assessed_at,
        )
        issued.append(write_issued(settings, ReportKind.SR, report, sr_number, previous_sr))
        if settings.kos_on_fail and document.flag == Flag.FAIL:
            kos_series, kos_number = next_in_series(previous_kos)
            selection = build_quality_issue_selection(
                evidence,
                document,
                series_instance_uid=kos_series,
                sop_instance_uid=generate_uid(),
                instance_number=kos_number,
                report=report,
                content_datetime=assessed_at,
            )
            issued.append(write_issued(settings, ReportKind.KOS, selection, kos_number, previous_kos))
    except ReportNotBuildable as exc:
        instruments().reports_failed.inc()
        log.warning("series %d: no report issued: %s", series_id, exc)
    except Exception:  # noqa: BLE001 - a report bug must not lose the assessment; logged with traceback
        instruments().reports_failed.inc()
        log.exception("series %d: issuing its report failed", series_id)
    for item in issued:
        instruments().reports_issued.labels(kind=item.kind.value).inc()
    return issued


def _facts(series: Series, assessment: Assessment) -> SeriesFacts:
    document = stored_document(assessment)
    return SeriesFacts(
        flag=document.flag,
        metrics={name: metric.value for name, metric in document.metrics.items()},
        modality=series.modality,
        station_name=series.station_name,
        series_description=series.series_description,
        calling_ae=series.calling_ae,
    )


def _new_job(
    session: Session,
    assessment: Assessment,
    planned: PlannedAction,
    report: Report | None,
    now: datetime,
    review_id: int = 0,
) -> DeliveryJob:
    job = DeliveryJob(
        series_id=assessment.series_id,
        assessment_id=assessment.id,
        report_id=report.id if report else None,
        review_id=review_id,
        action=planned.action,
        target=planned.target,
        rule=planned.rule,
        state=DeliveryState.PENDING,
        attempts=0,
        manual_retries=0,
        next_attempt_at=now,
        enqueued_at=now,
        last_error="",
        created_at=now,
    )
    session.add(job)
    return job


def route_review_revision(
    session: Session,
    settings: Settings,
    series: Series,
    assessment: Assessment,
    report: Report,
    review_id: int,
) -> list[int]:
    """Jobs sending a review's SR revision wherever the routing rules send the assessment's SR;
    returns their ids. Call in the transaction that records the review and the report.

    The rules match the assessment's machine verdict, as they did for its own SR, so the revision goes
    where the SR it supersedes went: a PACS then holds the person's finding beside the machine's.
    """
    now = datetime.now(UTC)
    planned_actions = route(
        settings.routing_rules, _facts(series, assessment), report_only=settings.report_only
    )
    jobs = [
        _new_job(session, assessment, planned, report, now, review_id)
        for planned in planned_actions
        if planned.action == DeliveryAction.SEND_SR
    ]
    session.flush()
    if jobs:
        targets = ", ".join(job.target for job in jobs)
        log.info("series %d: review %d's SR revision routed to %s", series.id, review_id, targets)
    return [job.id for job in jobs]


def record_publication(
    session: Session, settings: Settings, assessment: Assessment, issued: Sequence[IssuedReport]
) -> list[int]:
    """Rows for the issued reports and for every routed delivery; returns the new job ids.

    Call in the transaction that stores ``assessment``. A superseded assessment (the series changed
    while it was scored) routes nothing: its successor will.
    """
    session.flush()
    series = session.get_one(Series, assessment.series_id)
    if series.revision != assessment.revision:
        return []
    now = datetime.now(UTC)
    reports: dict[ReportKind, Report] = {}
    for item in issued:
        report = report_row(item, assessment, now)
        session.add(report)
        reports[item.kind] = report
    session.flush()
    jobs = []
    for planned in route(
        settings.routing_rules, _facts(series, assessment), report_only=settings.report_only
    ):
        kind = REPORT_OF_ACTION.get(planned.action)
        needed = reports.get(kind) if kind else None
        if kind is not None and needed is None:
            continue  # no such report for this assessment (no SR when not done, KOS only on fail)
        jobs.append(_new_job(session, assessment, planned, needed, now))
    session.flush()
    if jobs:
        log.info(
            "series %d: %d deliveries routed (%s)",
            series.id,
            len(jobs),
            ", ".join(f"{job.action.value}->{job.target}" for job in jobs),
        )
    return [job.id for job in jobs]
