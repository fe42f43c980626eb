"""Quality over time: the current assessment's quality of every scored series, oldest first.

Trends, baselines and drift (:mod:`qcgate.assessment.drift`) read one row per series: when it was
acquired (its first instance's arrival), its station and protocol, the verdict's quality and flag, and
a key of the models that scored it, since a new model moves every quality and so starts a new
baseline. Only the newest assessment of a series counts, as everywhere else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.store.tables import Assessment, Series


@dataclass(frozen=True)
class QualityPoint:
    """One scored series on a trend line."""

    series_id: int
    series_instance_uid: str
    time: datetime
    station: str
    protocol: str
    quality: float
    flag: Flag | None
    models: str  # models_key of its provenance


def series_protocol(protocol_name: str, series_description: str) -> str:
    """A series' protocol: ProtocolName where the scanner sent one, else SeriesDescription (which
    sites often edit per exam, so it groups less well)."""
    return protocol_name or series_description


def models_key(verdict_model: str | None, metric_versions: str | None, algorithms: str | None) -> str:
    """A short digest of what turns pixels into quality: the verdict model, the metric suites'
    versions and the learned algorithms, as the provenance's JSON text holds them (read in SQL, so a
    scrape does not decode every row's provenance). Software releases that change none of them keep
    the key."""
    return _models_key(verdict_model or "", metric_versions or "", algorithms or "")


@cache
def _models_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _provenance_text(*path: str) -> Any:
    """A part of the provenance as JSON text (SQLite's json_extract, PostgreSQL's #>), not decoded."""
    return cast(Assessment.provenance[path], String)


def _protocol_is(protocol: str) -> Any:
    return or_(
        Series.protocol_name == protocol,
        and_(Series.protocol_name == "", Series.series_description == protocol),
    )


def quality_history(
    session: Session,
    *,
    station: str | None = None,
    protocol: str | None = None,
    series_uids: Sequence[str] | None = None,
) -> list[QualityPoint]:
    """Every series with a current, scored assessment, oldest acquisition first, optionally of one
    station and/or protocol (or only the series named). The whole history: a baseline is its
    group's first series."""
    current = select(func.max(Assessment.id)).group_by(Assessment.series_id).scalar_subquery()
    query = (
        select(
            Series.id,
            Series.series_instance_uid,
            Series.first_received_at,
            Series.station_name,
            Series.protocol_name,
            Series.series_description,
            Assessment.quality,
            Assessment.flag,
            _provenance_text("verdict", "model"),
            _provenance_text("metric_versions"),
            _provenance_text("algorithms"),
        )
        .join(Assessment, Assessment.series_id == Series.id)
        .where(
            Assessment.id.in_(current),
            Assessment.outcome == SeriesStatus.DONE,
            Assessment.quality.is_not(None),
        )
        .order_by(Series.first_received_at, Series.id)
    )
    if station is not None:
        query = query.where(Series.station_name == station)
    if protocol is not None:
        query = query.where(_protocol_is(protocol))
    if series_uids is not None:
        query = query.where(Series.series_instance_uid.in_(series_uids))
    return [
        QualityPoint(
            series_id=series_id,
            series_instance_uid=series_uid,
            time=first_received_at,
            station=station_name,
            protocol=series_protocol(protocol_name, description),
            quality=float(quality),
            flag=flag,
            models=models_key(verdict_model, metric_versions, algorithms),
        )
        for (
            series_id,
            series_uid,
            first_received_at,
            station_name,
            protocol_name,
            description,
            quality,
            flag,
            verdict_model,
            metric_versions,
            algorithms,
        ) in session.execute(query)
    ]
