"""The Prometheus text of one process or pod: its processes' counters and, from the leader, the gauges.

Counters and histograms come from prometheus_client's multiprocess files in ``metrics_dir`` (every
process of this machine or pod). Gauges that describe the whole installation (series waiting, spool
free space) are read at scrape time, and only by the process that leads the completion sweep
(:mod:`qcgate.worker.leadership`): with three API replicas and two receivers they would otherwise be
reported five times, and summed by every dashboard that forgot a ``max``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from qcgate.assessment.drift import analyse, current_groups
from qcgate.core.observability import protocol_label, station_label
from qcgate.core.settings import Settings
from qcgate.store.repository import queue_depth
from qcgate.store.retention import spool_free_bytes
from qcgate.store.trends import quality_history
from qcgate.worker.leadership import SweeperLeadership


class LeaderGauges(Collector):
    """Queue depth, spool free space and quality drift, read at scrape time, while this process leads
    the sweep."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], leadership: SweeperLeadership
    ) -> None:
        self._settings, self._sessions, self._leadership = settings, sessions, leadership

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._leadership.leading:
            return
        with self._sessions() as session:
            depth = queue_depth(session)
            drift = quality_drift(self._settings, session)
        yield GaugeMetricFamily("qcgate_queue_depth", "Series queued or being assessed.", value=depth)
        yield GaugeMetricFamily(
            "qcgate_spool_free_bytes",
            "Free bytes on the spool's file system.",
            value=spool_free_bytes(self._settings),
        )
        yield from drift


def quality_drift(settings: Settings, session: Session) -> list[GaugeMetricFamily]:
    """``qcgate_quality_drift{station,protocol}``: the lower CUSUM of each station and protocol's
    quality (docs/drift.md; 0 while its baseline is still being collected), the largest of those
    that share a label set (unlisted stations and protocols share ``other``), and
    ``qcgate_quality_drift_threshold`` (``drift_threshold``), which the alert rule compares it
    with. Computed from the history at each scrape: nothing to keep in step, at the cost of
    reading every scored series' quality."""
    drift = GaugeMetricFamily(
        "qcgate_quality_drift",
        "Lower CUSUM of standardized quality per station and protocol; above the threshold it drifts down.",
        labels=["station", "protocol"],
    )
    largest: dict[tuple[str, str], float] = {}
    for group in current_groups(analyse(quality_history(session), settings)):  # 0 until a baseline
        labels = (station_label(settings, group.station), protocol_label(settings, group.protocol))
        largest[labels] = max(largest.get(labels, 0.0), group.statistic)
    for labels, statistic in sorted(largest.items()):
        drift.add_metric(list(labels), statistic)
    threshold = GaugeMetricFamily(
        "qcgate_quality_drift_threshold",
        "The drift_threshold setting: qcgate_quality_drift above it is drift.",
        value=settings.drift_threshold,
    )
    return [drift, threshold]


def metrics_text(
    settings: Settings, sessions: sessionmaker[Session], leadership: SweeperLeadership | None
) -> bytes:
    """The exposition text of this machine's or pod's processes, with the gauges where it leads."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if leadership is not None:
        registry.register(LeaderGauges(settings, sessions, leadership))
    return generate_latest(registry)
