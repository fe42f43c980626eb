"""``/api/v1/trends`` and ``/api/v1/drift``: quality per station and protocol over time, its baselines
and the drift detector (docs/drift.md).

Both read the whole history of the groups asked for (a baseline is a group's first series) and
compute baselines, percentiles and the CUSUM on the way out: nothing is stored, so a changed
setting applies at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from qcgate.api.deps import SessionDep, SettingsDep
from qcgate.assessment.drift import GroupDrift, analyse, current_groups
from qcgate.core.outcomes import Flag
from qcgate.store.trends import quality_history

router = APIRouter(prefix="/api/v1", tags=["trends"])


class TrendPoint(BaseModel):
    series_instance_uid: str
    time: datetime = Field(description="When the series' first instance arrived.")
    station: str
    protocol: str = Field(description="ProtocolName, else SeriesDescription.")
    quality: float = Field(description="The verdict's 0-100 quality (higher is better).")
    flag: Flag | None
    percentile: float | None = Field(
        description="Mid-rank among its station and protocol's baseline (0-100); null while the"
        " baseline is still being collected."
    )
    models: str = Field(description="Key of the models that scored it; a new key starts a new baseline.")


class DriftPublic(BaseModel):
    station: str
    protocol: str
    models: str
    n: int = Field(description="Series of this station and protocol scored by these models.")
    baseline_series: int = Field(description="Series in the baseline (0 until there are enough).")
    baseline_median: float | None
    baseline_mad: float | None
    statistic: float = Field(description="The lower CUSUM of standardized quality.")
    drifting: bool = Field(description="statistic > drift_threshold.")
    last_time: datetime | None


class TrendsPublic(BaseModel):
    points: list[TrendPoint]
    limits: dict[str, float] = Field(
        description="The site's verdict limits (quality_warn, quality_fail, ...)."
    )
    drift: list[DriftPublic] = Field(description="Baseline and drift of each station and protocol shown.")


def _checked(since: datetime | None) -> datetime | None:
    if since is None:
        return None
    if since.tzinfo is None:
        raise HTTPException(400, "since needs a timezone, e.g. 2026-11-21T10:00:00Z")
    try:
        return since.astimezone(UTC)
    except OverflowError as exc:
        raise HTTPException(400, "since is out of range once converted to UTC") from exc


def _points(groups: list[GroupDrift], since: datetime | None, limit: int) -> list[TrendPoint]:
    points = [
        TrendPoint(
            series_instance_uid=point.series_instance_uid,
            time=point.time,
            station=point.station,
            protocol=point.protocol,
            quality=point.quality,
            flag=point.flag,
            percentile=percentile,
            models=point.models,
        )
        for group in groups
        for point, percentile in zip(group.points, group.percentiles, strict=True)
        if since is None or point.time >= since
    ]
    points.sort(key=lambda p: p.time)
    return points[-limit:]


StationQuery = Annotated[str | None, Query(max_length=64, description="StationName.")]
ProtocolQuery = Annotated[
    str | None, Query(max_length=64, description="ProtocolName, else SeriesDescription.")
]


@router.get("/trends", response_model=TrendsPublic, summary="Quality per station and protocol over time")
def get_trends(
    session: SessionDep,
    settings: SettingsDep,
    station: StationQuery = None,
    protocol: ProtocolQuery = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=20000, description="At most this many newest points.")] = 5000,
) -> TrendsPublic:
    after = _checked(since)
    groups = analyse(quality_history(session, station=station, protocol=protocol), settings)
    return TrendsPublic(
        points=_points(groups, after, limit),
        limits=settings.verdict_limits.model_dump(),
        drift=[DriftPublic.model_validate(group.as_json()) for group in current_groups(groups)],
    )


@router.get(
    "/drift", response_model=list[DriftPublic], summary="Baseline and drift of each station and protocol"
)
def get_drift(
    session: SessionDep, settings: SettingsDep, station: StationQuery = None, protocol: ProtocolQuery = None
) -> list[DriftPublic]:
    groups = analyse(quality_history(session, station=station, protocol=protocol), settings)
    return [DriftPublic.model_validate(group.as_json()) for group in current_groups(groups)]
