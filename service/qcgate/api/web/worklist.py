"""``/``: the worklist, newest series first, and ``/worklist/rows``, the same rows for live updates.

One query for the page of series (filters on indexed columns, newest by id as REST pages), one for
their current assessments. Patient ID, accession number and exam time come from the spooled header
(web/patient.py), only for callers with the images role, and every such answer is logged naming the
client and how many series' patient data it saw (in the spirit of IHE ATNA; no patient data is logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from qcgate.api.deps import Caller, SessionDep
from qcgate.api.web.auth import PageCaller
from qcgate.api.web.patient import NONE, PatientCache, PatientFields
from qcgate.api.web.templating import render
from qcgate.core.outcomes import Flag
from qcgate.core.settings import Role
from qcgate.store.tables import Assessment, Series

log = logging.getLogger("qcgate.access")
router = APIRouter(include_in_schema=False)
DEFAULT_ROWS = 100
POLL_SECONDS = 5


@dataclass(frozen=True)
class WorklistFilters:
    flag: Flag | None = None
    station: str = ""
    protocol: str = ""
    day: date | None = None
    limit: int = DEFAULT_ROWS

    def query_string(self) -> str:
        parts = {
            "flag": self.flag.value if self.flag else "",
            "station": self.station,
            "protocol": self.protocol,
        }
        parts["date"] = self.day.isoformat() if self.day else ""
        return urlencode({k: v for k, v in parts.items() if v})


@dataclass(frozen=True)
class WorklistRow:
    uid: str
    time: datetime
    station: str
    protocol: str
    status: str
    flag: str
    quality: float | None
    findings: list[dict[str, Any]]
    patient: PatientFields


def protocol_of(series: Series) -> str:
    """ProtocolName where the scanner sent one, else SeriesDescription (as trends group them)."""
    return getattr(series, "protocol_name", "") or series.series_description


def worklist_rows(
    session: Session, filters: WorklistFilters, patients: PatientCache | None
) -> list[WorklistRow]:
    conditions = []
    if filters.flag is not None:
        conditions.append(Series.flag == filters.flag)
    if filters.station:
        conditions.append(Series.station_name == filters.station)
    if filters.protocol:
        named = getattr(Series, "protocol_name", None)
        described = Series.series_description == filters.protocol
        conditions.append(or_(named == filters.protocol, described) if named is not None else described)
    if filters.day is not None:
        start = datetime.combine(filters.day, time(), UTC)
        conditions.append(Series.last_received_at >= start)
        conditions.append(Series.last_received_at < start + timedelta(days=1))
    # One query: the page of series, each joined to its newest assessment (a per-row index lookup).
    newest = (
        select(func.max(Assessment.id))
        .where(Assessment.series_id == Series.id)
        .correlate(Series)
        .scalar_subquery()
    )
    protocol_name = getattr(Series, "protocol_name", Series.series_description)
    query = (
        select(
            Series.id,
            Series.series_instance_uid,
            Series.last_received_at,
            Series.station_name,
            protocol_name,
            Series.series_description,
            Series.status,
            Series.flag,
            Assessment.quality,
            Assessment.findings,
        )
        .outerjoin(Assessment, Assessment.id == newest)
        .where(*conditions)
        .order_by(Series.id.desc())
        .limit(filters.limit)
    )
    found = session.execute(query).all()
    fields = patients.fields(session, [row[0] for row in found]) if patients is not None else {}
    rows = []
    for series_id, uid, received, station, named, described, status, flag, quality, findings in found:
        rows.append(
            WorklistRow(
                uid=uid,
                time=received,
                station=station,
                protocol=named or described,
                status=status.value,
                flag=flag.value if flag else "",
                quality=quality,
                findings=sorted(findings or [], key=lambda f: -float(f.get("severity", 0))),
                patient=fields.get(series_id, NONE),
            )
        )
    return rows


def _patients(request: Request, caller: Caller) -> PatientCache | None:
    if not caller.may(Role.IMAGES):
        return None
    cache: PatientCache | None = getattr(request.app.state, "patient_cache", None)
    if cache is None:
        cache = request.app.state.patient_cache = PatientCache(request.app.state.settings.spool_dir)
    return cache


def _filters(flag: str, station: str, protocol: str, day: str, limit: int) -> tuple[WorklistFilters, str]:
    """The filters, and a message for a value that cannot be used (then ignored, never a 500)."""
    problems = []
    chosen_flag = None
    if flag:
        try:
            chosen_flag = Flag(flag)
        except ValueError:
            problems.append(f"unknown flag {flag!r}")
    chosen_day = None
    if day:
        try:
            chosen_day = date.fromisoformat(day)
        except ValueError:
            problems.append(f"{day!r} is not a date (YYYY-MM-DD)")
    return WorklistFilters(chosen_flag, station.strip(), protocol.strip(), chosen_day, limit), "; ".join(
        problems
    )


def _logged(request: Request, caller: Caller, rows: list[WorklistRow]) -> None:
    if caller.may(Role.IMAGES):
        shown = sum(1 for row in rows if row.patient.patient_id)
        log.info(
            "client=%s role=%s viewed patient data of %d series (worklist %s)",
            caller.name,
            caller.role.value,
            shown,
            request.url.path,
        )


Text = Annotated[str, Query(max_length=64)]
Rows = Annotated[int, Query(ge=1, le=1000)]
DateText = Annotated[str, Query(alias="date", max_length=10)]


def _stations(session: Session) -> list[str]:
    return [
        name
        for name in session.scalars(select(Series.station_name).distinct().order_by(Series.station_name))
        if name
    ]


def worklist_query(
    flag: Text = "",
    station: Text = "",
    protocol: Text = "",
    day: DateText = "",
    limit: Rows = DEFAULT_ROWS,
) -> tuple[WorklistFilters, str]:
    """The worklist's query parameters as filters (the page and its live refresh take the same)."""
    return _filters(flag, station, protocol, day, limit)


WorklistQuery = Annotated[tuple[WorklistFilters, str], Depends(worklist_query)]


def _visible_rows(
    request: Request, caller: Caller, session: Session, filters: WorklistFilters
) -> list[WorklistRow]:
    """The rows this caller may see, the patient columns only for the images role, and logged."""
    rows = worklist_rows(session, filters, _patients(request, caller))
    _logged(request, caller, rows)
    return rows


@router.get("/", response_class=HTMLResponse)
def get_worklist(
    request: Request, caller: PageCaller, session: SessionDep, query: WorklistQuery
) -> HTMLResponse:
    filters, problem = query
    return render(
        request,
        "worklist.html",
        caller,
        rows=_visible_rows(request, caller, session, filters),
        filters=filters,
        problem=problem,
        flags=[f.value for f in Flag],
        stations=_stations(session),
        poll_seconds=POLL_SECONDS,
    )


@router.get("/worklist/rows", response_class=HTMLResponse)
def get_worklist_rows(
    request: Request, caller: PageCaller, session: SessionDep, query: WorklistQuery
) -> HTMLResponse:
    rows = _visible_rows(request, caller, session, query[0])
    return render(request, "_rows.html", caller, rows=rows)
