"""Logging set-up and the Prometheus instruments, shared by every qcgate process.

Metrics run in prometheus_client's multiprocess mode: the receiver, API and Celery worker processes
write to ``<data_dir>/prometheus`` and the API's ``/metrics`` aggregates them. The directory must be
in the environment before prometheus_client is first imported, hence :func:`prepare_process`.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from qcgate.core.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
CHATTY_LOGGERS = ("pynetdicom", "highdicom")
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def prepare_process(settings: Settings, *, reset_metrics: bool = False) -> None:
    """Configure logging and the metrics directory; ``reset_metrics`` only in the process that owns them."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    if settings.log_level.upper() != "DEBUG":
        for chatty in CHATTY_LOGGERS:  # a line per C-STORE or per copied module: only when debugging
            logging.getLogger(chatty).setLevel(logging.WARNING)
    if reset_metrics:
        shutil.rmtree(settings.metrics_dir, ignore_errors=True)
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.metrics_dir)


@dataclass(frozen=True)
class Instruments:
    instances_received: Counter
    instances_rejected: Counter
    connections_refused: Counter
    pruned: Counter
    series_assessed: Counter
    assessment_seconds: Histogram
    series_quality: Histogram
    findings: Counter
    receive_to_result_seconds: Histogram
    reports_issued: Counter
    reports_failed: Counter
    delivery_attempts: Counter
    delivery_retries: Counter
    delivery_dead_letters: Counter
    delivery_seconds: Histogram
    result_to_delivery_seconds: Histogram
    reviews: Counter


_creation_lock = threading.Lock()


OTHER_STATION = "other"
QUALITY_BUCKETS = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)


@cache
def _create_instruments() -> Instruments:
    from prometheus_client import Counter, Histogram

    return Instruments(
        instances_received=Counter("qcgate_instances_received_total", "Instances stored and acknowledged."),
        instances_rejected=Counter(
            "qcgate_instances_rejected_total", "C-STORE requests refused, by reason.", ["reason"]
        ),
        pruned=Counter(
            "qcgate_pruned_series_total", "Series whose pixels or results retention removed.", ["what"]
        ),
        connections_refused=Counter(
            "qcgate_connections_refused_total",
            "DICOM connections closed before association, by reason.",
            ["reason"],
        ),
        # station: one of settings.metric_stations or "other" (station_label), never a free-text value.
        series_assessed=Counter(
            "qcgate_series_assessed_total",
            "Series assessments finished, by flag or outcome and station.",
            ["flag", "station"],
        ),
        assessment_seconds=Histogram(
            "qcgate_assessment_seconds", "Time to score one series in a worker.", buckets=LATENCY_BUCKETS
        ),
        series_quality=Histogram(
            "qcgate_series_quality",
            "The verdict's 0-100 quality of each assessed series (higher is better), by station.",
            ["station"],
            buckets=QUALITY_BUCKETS,
        ),
        # kind: one of the verdict's finding kinds (a fixed, small set); severity: moderate or severe.
        findings=Counter(
            "qcgate_findings_total",
            "Artifacts found by the verdict, by kind and severity.",
            ["kind", "severity"],
        ),
        receive_to_result_seconds=Histogram(
            "qcgate_receive_to_result_seconds",
            "From the last instance received to the stored result.",
            buckets=LATENCY_BUCKETS,
        ),
        reports_issued=Counter("qcgate_reports_issued_total", "DICOM reports written, by kind.", ["kind"]),
        reports_failed=Counter(
            "qcgate_reports_failed_total", "Assessments whose report could not be built or written."
        ),
        # target: a configured destination or webhook name (bounded by the settings), never a UID.
        delivery_attempts=Counter(
            "qcgate_delivery_attempts_total",
            "Delivery attempts by action, target and outcome (delivered, failed).",
            ["action", "target", "outcome"],
        ),
        delivery_retries=Counter(
            "qcgate_delivery_retries_total", "Failed attempts scheduled for a retry.", ["action", "target"]
        ),
        delivery_dead_letters=Counter(
            "qcgate_delivery_dead_letters_total",
            "Deliveries given up (out of attempts or a permanent failure).",
            ["action", "target"],
        ),
        delivery_seconds=Histogram(
            "qcgate_delivery_seconds",
            "Duration of one successful delivery attempt.",
            ["action"],
            buckets=DELIVERY_BUCKETS,
        ),
        result_to_delivery_seconds=Histogram(
            "qcgate_result_to_delivery_seconds",
            "From the stored result to its delivery, retries included.",
            ["action"],
            buckets=LATENCY_BUCKETS,
        ),
        # verdict: acceptable or non_diagnostic (a person's review of a series).
        reviews=Counter("qcgate_reviews_total", "Reviews people recorded, by their verdict.", ["verdict"]),
    )


def station_label(settings: Settings, station_name: str) -> str:
    """The ``station`` label of a series: its StationName when ``metric_stations`` lists it, else ``other``.

    StationName is free text from the scanner; labelling by it unchecked would let any sender create
    new time series without bound, so only the site's configured stations get their own.
    """
    return station_name if station_name in settings.metric_stations else OTHER_STATION


def protocol_label(settings: Settings, protocol: str) -> str:
    """The ``protocol`` label: the protocol when ``metric_protocols`` lists it, else ``other``
    (ProtocolName and SeriesDescription are free text, as StationName is)."""
    return protocol if protocol in settings.metric_protocols else OTHER_STATION


def instruments() -> Instruments:
    """The process's instruments, created once on first use (after :func:`prepare_process`).

    The lock matters: concurrent first C-STOREs would otherwise register the counters twice.
    """
    with _creation_lock:
        return _create_instruments()
