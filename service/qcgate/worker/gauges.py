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

from qcgate.core.settings import Settings
from qcgate.store.repository import queue_depth
from qcgate.store.retention import spool_free_bytes
from qcgate.worker.leadership import SweeperLeadership


class LeaderGauges(Collector):
    """Queue depth and spool free space, read at scrape time, while this process leads the sweep."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], leadership: SweeperLeadership
    ) -> None:
        self._settings, self._sessions, self._leadership = settings, sessions, leadership

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._leadership.leading:
            return
        with self._sessions() as session:
            depth = queue_depth(session)
        yield GaugeMetricFamily("qcgate_queue_depth", "Series queued or being assessed.", value=depth)
        yield GaugeMetricFamily(
            "qcgate_spool_free_bytes",
            "Free bytes on the spool's file system.",
            value=spool_free_bytes(self._settings),
        )


def metrics_text(
    settings: Settings, sessions: sessionmaker[Session], leadership: SweeperLeadership | None
) -> bytes:
    """The exposition text of this machine's or pod's processes, with the gauges where it leads."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if leadership is not None:
        registry.register(LeaderGauges(settings, sessions, leadership))
    return generate_latest(registry)
