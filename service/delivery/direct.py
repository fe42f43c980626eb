"""Publish one assessment's SR now, synchronously, without the database or the queue.

For benchmarks (SR latency: build, durable write, C-STORE until acknowledged) and peer tests
(does Orthanc or another PACS file our SR?). The service itself publishes through
:mod:`service.delivery.publish` and delivery jobs; this path shares its SR building, file layout and
DICOM sending, so what it measures is what the service does, minus the queue.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom.uid import generate_uid

from service.delivery.dicom_send import store_files, store_item
from service.delivery.jobs import resolve_destination
from service.delivery.publish import read_evidence, write_report
from service.settings import Settings
from service.sr import PriorReport, build_quality_report


@dataclass(frozen=True)
class PublishedReport:
    """One SR written and acknowledged by the destination, with the time each step took."""

    sop_instance_uid: str
    series_instance_uid: str
    path: Path
    size_bytes: int
    build_s: float  # evidence headers read and the SR built (highdicom validates on construction)
    write_s: float  # encoded, fsynced and renamed into sr_dir
    send_s: float  # association, C-STORE, the destination's acknowledgement, release

    @property
    def total_s(self) -> float:
        return self.build_s + self.write_s + self.send_s


def publish_report_now(
    settings: Settings,
    destination: str,
    files: Sequence[Path],
    document: Mapping[str, Any],
    *,
    predecessor: PriorReport | None = None,
    assessed_at: datetime | None = None,
) -> PublishedReport:
    """Build the SR of ``document`` (a stored assessment document, e.g. ``SeriesAssessment.document()``)
    over the evaluated ``files``, keep it under ``settings.sr_dir`` and C-STORE it to the configured
    ``destination``; returns once the destination acknowledged it.

    Raises :class:`~service.errors.ReportNotBuildable` for a result that cannot be reported and a
    :class:`~service.errors.DeliveryFailed` leaf when the destination does not take it.
    """
    _, target = resolve_destination(settings, destination, calling_ae="")
    started = time.perf_counter()
    report = build_quality_report(
        read_evidence(files),
        document,
        series_instance_uid=predecessor.series_instance_uid if predecessor else generate_uid(),
        sop_instance_uid=generate_uid(),
        predecessor=predecessor,
        content_datetime=assessed_at,
    )
    built = time.perf_counter()
    path, size = write_report(settings.sr_dir, report)
    written = time.perf_counter()
    store_files(
        target, [store_item(path)], calling_ae=settings.ae_title, timeout_s=settings.delivery_timeout_s
    )
    sent = time.perf_counter()
    return PublishedReport(
        sop_instance_uid=str(report.SOPInstanceUID),
        series_instance_uid=str(report.SeriesInstanceUID),
        path=path,
        size_bytes=size,
        build_s=built - started,
        write_s=written - built,
        send_s=sent - written,
    )
