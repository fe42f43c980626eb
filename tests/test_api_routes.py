"""Every route of the REST API in-process: ``create_app`` on a migrated SQLite store seeded through
the repository, the embedded filesystem broker for the tasks the API sends, and FastAPI's TestClient.

The end-to-end tests show the same documents through a real ``qcgate serve``; here each route's
4xx paths (unknown UID, malformed UID, bad cursor and query values, missing or wrong bearer token,
a state that forbids the action) are checked one by one. The OpenAPI document is compared with the
app's routes, both ways. The last test proves that every route of the app was answered with a 2xx
by some test of this module, so a new route cannot arrive untested.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydicom.uid import Comprehensive3DSRStorage, KeyObjectSelectionDocumentStorage
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Message, Receive, Scope, Send

from qcgate.api.app import create_app
from qcgate.core.delivery_states import DeliveryAction, DeliveryState, ReportKind
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings, get_settings
from qcgate.harness.peers import free_port
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.repository import (
    ReceivedInstance,
    claim_series,
    queue_quiet_series,
    record_instance,
    request_rescore,
    series_by_uid,
    store_assessment,
)
from qcgate.store.tables import DeliveryJob, Report, Series
from qcgate.worker.celery_app import ASSESS_TASK, DELIVER_TASK, DELIVERY_QUEUE, QUEUE, create_celery
from qcgate.worker.leadership import SweeperLeadership

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ROOT = "1.2.826.0.1.3680043.10.1099"
STUDY_UID = f"{ROOT}.1"
DONE_UID, QUEUED_UID, PROCESSING_UID, NOT_ASSESSABLE_UID, RECEIVING_UID = (
    f"{ROOT}.2.{n}" for n in range(1, 6)
)
SR_SERIES_UID = f"{ROOT}.3"
SR_V1_UID, SR_V2_UID, KOS_UID = (f"{ROOT}.4.{n}" for n in range(1, 4))
UNKNOWN_UID = f"{ROOT}.999"
TOKEN = "s3cret"
PROBLEM_JSON = "application/problem+json"
SR_BYTES = b"\0" * 128 + b"DICM" + b"a stand-in for the SR file"
PER_SLICE_SNR = [10.0, 11.0, None, 14.0, 15.0]


def document(
    outcome: SeriesStatus, flag: Flag | None, *, snr: float = 12.5, reasons: list[str] | None = None
) -> dict[str, Any]:
    """An assessment document as the database holds it: one scored stack with per-slice values of
    ``snr`` (a None where a slice has none) and one skipped stack."""
    return {
        "status": outcome.value,
        "instances": 3,
        "flag": flag.value if flag else None,
        "reasons": reasons or [],
        "metrics": {
            "snr": {"value": snr, "higher_is_better": True},
            "cjv": {"value": 0.4, "higher_is_better": False},
            "msm": {"value": 0.1, "higher_is_better": False, "quality": 55.0},
        },
        "stacks": [
            {
                "label": "axial",
                "shape": [5, 8, 8],
                "scored": True,
                "skipped_reason": "",
                "metrics": {
                    "snr": {"value": snr, "higher_is_better": True, "per_slice": PER_SLICE_SNR},
                    "cjv": {"value": 0.4, "higher_is_better": False},
                },
            },
            {
                "label": "localizer",
                "shape": [1, 8, 8],
                "scored": False,
                "skipped_reason": "thin stack beside a volume",
                "metrics": {},
            },
        ],
        "provenance": {
            "software_version": "0.1.0",
            "metric_versions": {"classic": "1"},
            "thresholds": {"snrd": {"warn": 3.0, "fail": 2.0, "scale": "value", "source": "test"}},
        },
    }


def received(
    series_uid: str, number: int, modality: str = "MR", station: str = "MRC40123"
) -> ReceivedInstance:
    return ReceivedInstance(
        study_instance_uid=STUDY_UID,
        series_instance_uid=series_uid,
        sop_instance_uid=f"{series_uid}.{number}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        modality=modality,
        station_name=station,
        series_description="t1_mprage_sag",
        scored=modality == "MR",
    )


def receive(session: Session, series_uid: str, count: int, at: datetime, **header: str) -> None:
    for number in range(1, count + 1):
        instance = received(series_uid, number, **header)
        record_instance(session, instance, f"x/{number}.dcm", 1000, "MR1", at + timedelta(seconds=number))


def assess(session: Session, series_id: int, at: datetime, doc: dict[str, Any]) -> int:
    """Claim the queued series at ``at`` and store its assessment; returns the assessment id."""
    series = claim_series(session, series_id, at)
    assert series is not None
    outcome, finished = SeriesStatus(doc["status"]), at + timedelta(seconds=4)
    assert series.lease_token is not None
    stored = store_assessment(
        session, series_id, series.revision, outcome, doc, at, finished, series.lease_token
    )
    assert stored is not None
    session.flush()
    return stored.id


def series_id(session: Session, uid: str) -> int:
    series = series_by_uid(session, uid)
    assert series is not None
    return series.id


@dataclass
class Seeded:
    """Ids of the seeded rows: five series in five states, two assessments of one, reports, jobs."""

    series: dict[str, int] = field(default_factory=dict)
    assessments: list[int] = field(default_factory=list)
    jobs: dict[DeliveryState, int] = field(default_factory=dict)


def seed(settings: Settings, sessions: sessionmaker[Session]) -> Seeded:
    seeded = Seeded()
    with sessions.begin() as session:
        receive(session, DONE_UID, 3, T0)
        receive(session, QUEUED_UID, 2, T0 + timedelta(minutes=1))
        receive(session, PROCESSING_UID, 2, T0 + timedelta(minutes=2), station="MRC50000")
        receive(session, NOT_ASSESSABLE_UID, 1, T0 + timedelta(minutes=3), modality="CT")
        assert len(queue_quiet_series(session, T0 + timedelta(minutes=4), T0 + timedelta(minutes=5))) == 4
        receive(session, RECEIVING_UID, 1, T0 + timedelta(minutes=10))
        seeded.series = {
            uid: series_id(session, uid)
            for uid in (DONE_UID, QUEUED_UID, PROCESSING_UID, NOT_ASSESSABLE_UID, RECEIVING_UID)
        }
        done = seeded.series[DONE_UID]
        seeded.assessments.append(
            assess(session, done, T0 + timedelta(minutes=6), document(SeriesStatus.DONE, Flag.PASS))
        )
        request_rescore(session, session.get_one(Series, done), T0 + timedelta(minutes=7))
        seeded.assessments.append(
            assess(
                session,
                done,
                T0 + timedelta(minutes=8),
                document(SeriesStatus.DONE, Flag.WARN, snr=4.0, reasons=["snr low"]),
            )
        )
        assert claim_series(session, seeded.series[PROCESSING_UID], T0 + timedelta(minutes=6)) is not None
        assess(
            session,
            seeded.series[NOT_ASSESSABLE_UID],
            T0 + timedelta(minutes=6),
            document(SeriesStatus.NOT_ASSESSABLE, None, reasons=["not MR image storage"]),
        )
        first, second = seeded.assessments
        v1 = report(session, done, first, ReportKind.SR, SR_V1_UID, 1, None)  # its file is gone
        v2 = report(session, done, second, ReportKind.SR, SR_V2_UID, 2, v1)
        report(session, done, second, ReportKind.KOS, KOS_UID, 1, None)
        for state, action, target in (
            (DeliveryState.DELIVERED, DeliveryAction.SEND_SR, "ARCHIVE"),
            (DeliveryState.DEAD, DeliveryAction.WEBHOOK, "ops"),
            (DeliveryState.PENDING, DeliveryAction.FORWARD, "ARCHIVE"),
            (DeliveryState.SENDING, DeliveryAction.SEND_KOS, "REVIEW"),
        ):
            job = DeliveryJob(
                series_id=done,
                assessment_id=second,
                report_id=v2.id if action == DeliveryAction.SEND_SR else None,
                action=action,
                target=target,
                rule="route-all",
                state=state,
                attempts=3 if state == DeliveryState.DEAD else 1,
                manual_retries=0,
                next_attempt_at=T0 + timedelta(minutes=20),
                last_attempt_at=T0 + timedelta(minutes=9),
                last_error="HTTP 500 from the webhook" if state == DeliveryState.DEAD else "",
                created_at=T0 + timedelta(minutes=8),
                delivered_at=T0 + timedelta(minutes=9) if state == DeliveryState.DELIVERED else None,
            )
            session.add(job)
            session.flush()
            seeded.jobs[state] = job.id
    (settings.sr_dir / "v2.dcm").parent.mkdir(parents=True, exist_ok=True)
    (settings.sr_dir / "v2.dcm").write_bytes(SR_BYTES)
    return seeded


def report(
    session: Session,
    series_id: int,
    assessment_id: int,
    kind: ReportKind,
    sop_uid: str,
    number: int,
    predecessor: Report | None,
) -> Report:
    row = Report(
        series_id=series_id,
        assessment_id=assessment_id,
        kind=kind,
        sop_class_uid=Comprehensive3DSRStorage
        if kind == ReportKind.SR
        else KeyObjectSelectionDocumentStorage,
        sop_instance_uid=sop_uid,
        series_instance_uid=SR_SERIES_UID if kind == ReportKind.SR else f"{ROOT}.5",
        instance_number=number,
        path=f"v{number}.dcm" if kind == ReportKind.SR else "kos.dcm",
        size_bytes=len(SR_BYTES),
        predecessor_id=predecessor.id if predecessor else None,
        created_at=T0 + timedelta(minutes=8, seconds=number),
    )
    session.add(row)
    session.flush()
    return row


def app_routes(app: FastAPI) -> dict[tuple[str, str], Any]:
    """Every route the app serves, included routers flattened, by (method, full path); HEAD aside
    (Starlette adds it to GET routes). Values are FastAPI's route contexts (path, methods, ...)."""
    return {
        (method, context.path): context
        for context in iter_route_contexts(app.routes)
        for method in sorted(context.methods or ())
        if method != "HEAD"
    }


class RouteRecorder:
    """ASGI wrapper noting (method, path template) of every request a route answered with a 2xx."""

    def __init__(self, app: FastAPI, hits: set[tuple[str, str]]) -> None:
        self.app, self.hits = app, hits
        contexts = list(iter_route_contexts(app.routes))
        # APIRoutes are in the scope when they answer; Starlette's own (the docs) leave their endpoint.
        self.paths = {id(c.original_route): c.path for c in contexts} | {
            id(c.endpoint): c.path for c in contexts
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status: list[int] = []

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, noting)
        route = scope.get("route", scope.get("endpoint"))
        if scope["type"] == "http" and route is not None and status and 200 <= status[0] < 300:
            self.hits.add((scope["method"], self.paths[id(route)]))


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    seeded: Seeded

    def series(self, uid: str) -> Series:
        with self.sessions() as session:
            series = series_by_uid(session, uid)
            assert series is not None
            return series

    def job(self, job_id: int) -> DeliveryJob:
        with self.sessions() as session:
            return session.get_one(DeliveryJob, job_id)

    def broker_messages(self, queue: str) -> list[dict[str, Any]]:
        """Tasks the API sent to ``queue`` of the embedded filesystem broker: (task name, args)."""
        messages = []
        for path in sorted((self.settings.broker_dir / "queue").glob(f"*.{queue}.msg")):
            message = json.loads(path.read_text())
            args = json.loads(base64.b64decode(message["body"]))[0]
            messages.append({"task": message["headers"]["task"], "args": args})
        return messages


@pytest.fixture(scope="module")
def route_hits() -> set[tuple[str, str]]:
    return set()


@pytest.fixture(scope="module")
def seeded_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    """A data directory migrated and seeded once; each test gets a copy (migrating takes a while)."""
    settings = get_settings(data_dir=tmp_path_factory.mktemp("seeded"))
    upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    seeded = seed(settings, session_factory(engine))
    engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return settings.data_dir, seeded


@pytest.fixture
def make_api(
    tmp_path: Path,
    seeded_data: tuple[Path, Seeded],
    route_hits: set[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Api]]:
    """The app on a fresh copy of the seeded store with these settings; its client records routes hit."""
    made: list[Api] = []

    def make(**overrides: Any) -> Api:
        template, seeded = seeded_data
        data_dir = shutil.copytree(template, tmp_path / f"data-{len(made)}")
        settings = get_settings(data_dir=data_dir, **overrides)
        settings.metrics_dir.mkdir()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(settings.metrics_dir))
        engine = create_database_engine(settings.effective_database_url)
        sessions = session_factory(engine)
        app = create_app(settings, sessions, create_celery(settings))
        client = TestClient(RouteRecorder(app, route_hits))
        made.append(Api(app, client, settings, engine, sessions, seeded))
        return made[-1]

    yield make
    for api in made:
        api.client.close()
        api.app.state.celery.close()
        api.engine.dispose()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api(destinations={"NOBODY": {"ae_title": "PACS", "host": "127.0.0.1", "port": free_port()}})


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return dict(body)


# health, readiness, metrics, documentation


def test_health_readiness_and_docs_answer(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    for path in ("/docs", "/docs/oauth2-redirect", "/redoc"):
        response = api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")


def test_readiness_is_a_problem_when_the_database_does_not_answer(api: Api, tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    api.app.state.sessions = session_factory(engine)
    assert "database unavailable" in assert_problem(api.client.get("/readyz"), 503)["detail"]
    engine.dispose()
    assert api.client.get("/healthz").status_code == 200, "liveness does not depend on the database"


def test_metrics_report_the_queue_depth_from_the_database(api: Api) -> None:
    leadership = SweeperLeadership(api.settings)  # serve: this process's sweeper leads
    api.app.state.leadership = leadership
    assert leadership.held()
    response = api.client.get("/metrics")
    leadership.release()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "qcgate_queue_depth 2.0" in response.text.splitlines()  # one queued, one processing
    assert DONE_UID not in response.text


def test_an_api_replica_without_the_lead_reports_no_installation_gauges(api: Api) -> None:
    """Three API replicas must not report the queue three times: only the leading sweeper's process does."""
    leader = SweeperLeadership(api.settings)
    assert leader.held()
    api.app.state.leadership = SweeperLeadership(api.settings)  # a sweeper that stands by
    assert not api.app.state.leadership.held()
    text = api.client.get("/metrics").text
    leader.release()
    assert "qcgate_queue_depth" not in text
    assert "qcgate_spool_free_bytes" not in text
    api.app.state.leadership = None  # `qcgate api` runs no sweeper at all
    assert "qcgate_queue_depth" not in api.client.get("/metrics").text


def test_openapi_documents_every_route_and_nothing_else(api: Api) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in api.client.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    routes = {
        route
        for route, context in app_routes(api.app).items()
        if isinstance(context.original_route, APIRoute) and context.include_in_schema
    }
    assert documented == routes
    assert {path for _, path in routes} >= {"/api/v1/series/{series_uid}", "/healthz", "/readyz", "/metrics"}


# series


def test_a_scored_series_has_its_current_assessment_and_timings(api: Api) -> None:
    body = api.client.get(f"/api/v1/series/{DONE_UID}").json()
    assert body["series_instance_uid"] == DONE_UID
    assert body["study_instance_uid"] == STUDY_UID
    assert body["status"] == "done"
    assert body["instances"] == 3
    assert (body["modality"], body["station_name"], body["calling_ae"]) == ("MR", "MRC40123", "MR1")
    assert body["series_description"] == "t1_mprage_sag"
    assert body["flag"] == "warn", "the newer assessment is current"
    assert body["reasons"] == ["snr low"]
    assert body["assessments"] == 2
    assert (body["metrics"]["snr"]["value"], body["metrics"]["snr"]["higher_is_better"]) == (4.0, True)
    assert body["metrics"]["msm"]["quality"] == 55.0
    assert body["stacks"][0]["metrics"]["snr"]["per_slice"] == PER_SLICE_SNR
    assert body["provenance"]["assessment_id"] == api.seeded.assessments[1]
    assert body["provenance"]["revision"] == 4, "3 instances, then the rescore's revision"
    assert body["provenance"]["thresholds"]["snrd"]["warn"] == 3.0
    assert body["provenance"]["software_version"] == "0.1.0"
    timings = body["timings"]
    assert timings["first_received_at"] == "2026-11-21T10:00:01Z"
    assert timings["last_received_at"] == "2026-11-21T10:00:03Z"
    assert timings["queued_at"] == "2026-11-21T10:07:00Z"
    assert timings["started_at"] == "2026-11-21T10:08:00Z"
    assert timings["finished_at"] == "2026-11-21T10:08:04Z"
    assert timings["receive_to_result_s"] == 481.0


def test_a_series_without_assessment_has_no_result_yet(api: Api) -> None:
    body = api.client.get(f"/api/v1/series/{RECEIVING_UID}").json()
    assert body["status"] == "receiving"
    assert (body["flag"], body["metrics"], body["stacks"], body["assessments"]) == (None, {}, [], 0)
    assert body["timings"]["queued_at"] is None
    assert body["timings"]["receive_to_result_s"] is None
    not_assessable = api.client.get(f"/api/v1/series/{NOT_ASSESSABLE_UID}").json()
    assert not_assessable["status"] == "not_assessable"
    assert not_assessable["flag"] is None
    assert not_assessable["reasons"] == ["not MR image storage"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/api/v1/series/{UNKNOWN_UID}", 404),
        ("/api/v1/series/not-a-uid", 422),
        ("/api/v1/series/1.2.3a", 422),
        (f"/api/v1/series/{'1.' * 32}1", 422),  # 65 characters: longer than a UID may be
        (f"/api/v1/series/{UNKNOWN_UID}/slices.svg", 404),
        ("/api/v1/series/not-a-uid/slices.svg", 422),
        (f"/api/v1/series/{DONE_UID}/slices.svg?metric={'x' * 33}", 422),
    ],
)
def test_series_problems(api: Api, path: str, status: int) -> None:
    assert_problem(api.client.get(path), status)


def test_listing_is_newest_first_and_pages_with_the_cursor(api: Api) -> None:
    everything = api.client.get("/api/v1/series").json()
    assert [s["series_instance_uid"] for s in everything["items"]] == [
        RECEIVING_UID,
        NOT_ASSESSABLE_UID,
        PROCESSING_UID,
        QUEUED_UID,
        DONE_UID,
    ]
    assert everything["next_cursor"] is None
    assert everything["items"][-1] == api.client.get(f"/api/v1/series/{DONE_UID}").json()

    listed, cursor, pages = [], None, 0
    while True:
        page = api.client.get(
            "/api/v1/series", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        pages += 1
        listed += [s["series_instance_uid"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert listed == [s["series_instance_uid"] for s in everything["items"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "done"}, [DONE_UID]),
        ({"status": "queued"}, [QUEUED_UID]),
        ({"status": "processing"}, [PROCESSING_UID]),
        ({"status": "failed"}, []),
        ({"flag": "warn"}, [DONE_UID]),
        ({"flag": "pass"}, []),
        ({"modality": "CT"}, [NOT_ASSESSABLE_UID]),
        ({"station": "MRC50000"}, [PROCESSING_UID]),
        ({"since": "2026-11-21T10:10:00Z"}, [RECEIVING_UID]),
        ({"until": "2026-11-21T10:01:00+00:00"}, [DONE_UID]),
        ({"since": "2026-11-21T11:00:00+01:00", "until": "2026-11-21T10:02:00Z"}, [QUEUED_UID, DONE_UID]),
        ({"modality": "MR", "status": "receiving"}, [RECEIVING_UID]),
    ],
)
def test_listing_filters(api: Api, params: dict[str, str], expected: list[str]) -> None:
    items = api.client.get("/api/v1/series", params=params).json()["items"]
    assert [s["series_instance_uid"] for s in items] == expected


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"status": "sideways"}, 422),
        ({"flag": "maybe"}, 422),
        ({"limit": "0"}, 422),
        ({"limit": "501"}, 422),
        ({"limit": "ten"}, 422),
        ({"since": "yesterday"}, 422),
        ({"modality": "M" * 17}, 422),
        ({"cursor": "c" * 65}, 422),
        ({"since": "2026-01-01T00:00:00"}, 400),  # no timezone
        ({"until": "2026-01-01T00:00:00"}, 400),
        ({"cursor": "!!"}, 400),
        ({"cursor": base64.urlsafe_b64encode(b"not a number").decode()}, 400),
    ],
)
def test_listing_problems(api: Api, params: dict[str, str], status: int) -> None:
    assert_problem(api.client.get("/api/v1/series", params=params), status)


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("path", ["/api/v1/series", "/api/v1/deliveries"])
@pytest.mark.parametrize(
    "cursor",
    [
        "!!",
        cursor_of("not a number"),
        cursor_of("9" * 40),  # past any database's integer: was a 500 (OverflowError from the driver)
        cursor_of(str(2**63)),
        cursor_of("0"),
        cursor_of("-5"),
        cursor_of(" 3"),  # int() takes these; split_page never writes them
        cursor_of("1_0"),
        cursor_of("\u0663"),  # ARABIC-INDIC DIGIT THREE
        cursor_of("3").rstrip("="),
    ],
)
def test_only_a_cursor_this_api_issued_is_accepted(api: Api, path: str, cursor: str) -> None:
    assert "cursor" in assert_problem(api.client.get(path, params={"cursor": cursor}), 400)["detail"]


@pytest.mark.parametrize(
    ("name", "moment"), [("until", "0001-01-01T00:00:00+01:00"), ("since", "9999-12-31T23:59:59-01:00")]
)
def test_a_time_that_overflows_in_utc_is_a_400(api: Api, name: str, moment: str) -> None:
    """Year 1 east of UTC and year 9999 west of it cannot be converted: this was a 500."""
    assert (
        "out of range"
        in assert_problem(api.client.get("/api/v1/series", params={name: moment}), 400)["detail"]
    )


def test_rescore_queues_a_finished_series_and_sends_its_task(api: Api) -> None:
    before = api.series(DONE_UID)
    accepted = api.client.post(f"/api/v1/series/{DONE_UID}/rescore")
    assert accepted.status_code == 202
    assert accepted.json() == {"series_instance_uid": DONE_UID, "status": "queued"}
    after = api.series(DONE_UID)
    assert after.status == SeriesStatus.QUEUED
    assert after.enqueue_count == before.enqueue_count + 1
    assert after.queued_at is not None
    assert after.queued_at > before.queued_at
    assert api.broker_messages(QUEUE) == [{"task": ASSESS_TASK, "args": [after.id]}]
    assert api.client.get(f"/api/v1/series/{DONE_UID}").json()["status"] == "queued"
    assert_problem(api.client.post(f"/api/v1/series/{DONE_UID}/rescore"), 409)


@pytest.mark.parametrize("uid", [RECEIVING_UID, QUEUED_UID, PROCESSING_UID])
def test_rescore_refuses_a_series_not_yet_assessed(api: Api, uid: str) -> None:
    status = api.series(uid).status
    problem = assert_problem(api.client.post(f"/api/v1/series/{uid}/rescore"), 409)
    assert status.value in problem["detail"]
    assert api.series(uid).status == status
    assert api.broker_messages(QUEUE) == []


def test_rescore_problems_and_a_not_assessable_series_may_be_rescored(api: Api) -> None:
    assert_problem(api.client.post(f"/api/v1/series/{UNKNOWN_UID}/rescore"), 404)
    assert_problem(api.client.post("/api/v1/series/x.1/rescore"), 422)
    assert api.client.get(f"/api/v1/series/{DONE_UID}/rescore").status_code == 405
    assert api.client.post(f"/api/v1/series/{NOT_ASSESSABLE_UID}/rescore").status_code == 202


def test_slice_chart_draws_each_defined_run_of_slices(api: Api) -> None:
    chart = api.client.get(f"/api/v1/series/{DONE_UID}/slices.svg", params={"metric": "snr"})
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/svg+xml"
    polylines = ElementTree.fromstring(chart.text).findall("{http://www.w3.org/2000/svg}polyline")
    assert [p.attrib["data-stack"] for p in polylines] == ["axial", "axial"], "a None splits the line"
    points = sum(len(p.attrib["points"].split()) for p in polylines)
    assert points == sum(v is not None for v in PER_SLICE_SNR)
    assert api.client.get(f"/api/v1/series/{DONE_UID}/slices.svg").text == chart.text, "snr by default"
    assert_problem(api.client.get(f"/api/v1/series/{DONE_UID}/slices.svg", params={"metric": "cjv"}), 404)
    assert (
        "receiving"
        in assert_problem(api.client.get(f"/api/v1/series/{RECEIVING_UID}/slices.svg"), 409)["detail"]
    )


# studies


def test_a_study_lists_its_series_in_arrival_order(api: Api) -> None:
    body = api.client.get(f"/api/v1/studies/{STUDY_UID}").json()
    assert body["study_instance_uid"] == STUDY_UID
    assert [s["series_instance_uid"] for s in body["series"]] == [
        DONE_UID,
        QUEUED_UID,
        PROCESSING_UID,
        NOT_ASSESSABLE_UID,
        RECEIVING_UID,
    ]
    assert body["series"][0] == api.client.get(f"/api/v1/series/{DONE_UID}").json()
    assert_problem(api.client.get(f"/api/v1/studies/{UNKNOWN_UID}"), 404)
    assert_problem(api.client.get("/api/v1/studies/1.2.x"), 422)


# reports


def test_reports_are_listed_with_their_predecessors_and_downloadable(api: Api) -> None:
    items = api.client.get(f"/api/v1/series/{DONE_UID}/reports").json()["items"]
    assert [(r["kind"], r["sop_instance_uid"]) for r in items] == [
        ("sr", SR_V1_UID),
        ("sr", SR_V2_UID),
        ("kos", KOS_UID),
    ]
    v1, v2, kos = items
    assert v2 == {
        "kind": "sr",
        "sop_instance_uid": SR_V2_UID,
        "sop_class_uid": Comprehensive3DSRStorage,
        "series_instance_uid": SR_SERIES_UID,
        "instance_number": 2,
        "study_instance_uid": STUDY_UID,
        "evaluated_series_instance_uid": DONE_UID,
        "assessment_id": api.seeded.assessments[1],
        "predecessor_sop_instance_uid": SR_V1_UID,
        "size_bytes": len(SR_BYTES),
        "created_at": "2026-11-21T10:08:02Z",
        "href": f"/api/v1/reports/{SR_V2_UID}/file",
    }
    assert v1["predecessor_sop_instance_uid"] is None
    assert v1["assessment_id"] == api.seeded.assessments[0]
    assert kos["series_instance_uid"] != v2["series_instance_uid"]
    assert api.client.get(f"/api/v1/reports/{SR_V2_UID}").json() == v2
    download = api.client.get(v2["href"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/dicom"
    assert download.content == SR_BYTES
    assert f'filename="{SR_V2_UID}.dcm"' in download.headers["content-disposition"]
    assert api.client.get(f"/api/v1/series/{RECEIVING_UID}/reports").json() == {"items": []}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/api/v1/series/{UNKNOWN_UID}/reports", 404),
        ("/api/v1/series/not-a-uid/reports", 422),
        (f"/api/v1/reports/{UNKNOWN_UID}", 404),
        ("/api/v1/reports/not-a-uid", 422),
        (f"/api/v1/reports/{UNKNOWN_UID}/file", 404),
        (f"/api/v1/reports/{SR_V1_UID}/file", 404),  # recorded, but its file is gone from the SR store
    ],
)
def test_report_problems(api: Api, path: str, status: int) -> None:
    assert_problem(api.client.get(path), status)


# deliveries


def test_deliveries_are_listed_newest_first_with_their_state(api: Api) -> None:
    jobs = api.seeded.jobs
    items = api.client.get("/api/v1/deliveries").json()["items"]
    assert [d["id"] for d in items] == sorted(jobs.values(), reverse=True)
    by_state = {d["state"]: d for d in items}
    delivered = by_state["delivered"]
    assert delivered == {
        "id": jobs[DeliveryState.DELIVERED],
        "series_instance_uid": DONE_UID,
        "assessment_id": api.seeded.assessments[1],
        "action": "send_sr",
        "target": "ARCHIVE",
        "rule": "route-all",
        "state": "delivered",
        "attempts": 1,
        "max_attempts": api.settings.delivery_max_attempts,
        "manual_retries": 0,
        "report_sop_instance_uid": SR_V2_UID,
        "created_at": "2026-11-21T10:08:00Z",
        "next_attempt_at": None,
        "last_attempt_at": "2026-11-21T10:09:00Z",
        "last_error": "",
        "last_duration_s": None,
        "delivered_at": "2026-11-21T10:09:00Z",
    }
    assert by_state["dead"]["next_attempt_at"] is None
    assert by_state["dead"]["last_error"] == "HTTP 500 from the webhook"
    assert by_state["pending"]["next_attempt_at"] == "2026-11-21T10:20:00Z", "due time while pending"
    assert by_state["sending"]["next_attempt_at"] == "2026-11-21T10:20:00Z", "lease end while sending"
    assert by_state["pending"]["report_sop_instance_uid"] is None
    assert api.client.get(f"/api/v1/deliveries/{jobs[DeliveryState.DELIVERED]}").json() == delivered

    first = api.client.get("/api/v1/deliveries", params={"limit": 3}).json()
    assert [d["id"] for d in first["items"]] == [d["id"] for d in items[:3]]
    rest = api.client.get("/api/v1/deliveries", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [d["id"] for d in rest["items"]] == [items[3]["id"]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "states"),
    [
        ({"state": "dead"}, ["dead"]),
        ({"action": "forward"}, ["pending"]),
        ({"target": "ARCHIVE"}, ["pending", "delivered"]),
        ({"target": "ARCHIVE", "state": "pending"}, ["pending"]),
        ({"series": DONE_UID}, ["sending", "pending", "dead", "delivered"]),
        ({"series": RECEIVING_UID}, []),
        ({"target": "NOBODY"}, []),
    ],
)
def test_delivery_filters(api: Api, params: dict[str, str], states: list[str]) -> None:
    items = api.client.get("/api/v1/deliveries", params=params).json()["items"]
    assert [d["state"] for d in items] == states


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/deliveries?state=lost", 422),
        ("/api/v1/deliveries?action=email", 422),
        ("/api/v1/deliveries?limit=0", 422),
        ("/api/v1/deliveries?series=not-a-uid", 422),
        (f"/api/v1/deliveries?target={'t' * 65}", 422),
        (f"/api/v1/deliveries?series={UNKNOWN_UID}", 404),
        ("/api/v1/deliveries?cursor=!!", 400),
        ("/api/v1/deliveries/999999", 404),
        ("/api/v1/deliveries/0", 422),
        ("/api/v1/deliveries/-1", 422),
        ("/api/v1/deliveries/one", 422),
        (f"/api/v1/deliveries/{2**62 + 1}", 422),
    ],
)
def test_delivery_problems(api: Api, path: str, status: int) -> None:
    assert_problem(api.client.get(path), status)


def test_retry_gives_a_dead_delivery_a_fresh_round_and_sends_its_task(api: Api) -> None:
    dead = api.seeded.jobs[DeliveryState.DEAD]
    retried = api.client.post(f"/api/v1/deliveries/{dead}/retry")
    assert retried.status_code == 202
    body = retried.json()
    assert (body["state"], body["attempts"], body["manual_retries"]) == ("pending", 0, 1)
    assert body["last_error"] == "HTTP 500 from the webhook", "kept until a new attempt replaces it"
    assert body["next_attempt_at"] is not None
    job = api.job(dead)
    assert (job.state, job.attempts, job.manual_retries) == (DeliveryState.PENDING, 0, 1)
    assert job.enqueued_at == job.next_attempt_at
    assert api.broker_messages(DELIVERY_QUEUE) == [{"task": DELIVER_TASK, "args": [dead]}]
    assert_problem(api.client.post(f"/api/v1/deliveries/{dead}/retry"), 409)


@pytest.mark.parametrize("state", [DeliveryState.DELIVERED, DeliveryState.PENDING, DeliveryState.SENDING])
def test_retry_refuses_a_delivery_that_is_not_dead(api: Api, state: DeliveryState) -> None:
    job_id = api.seeded.jobs[state]
    problem = assert_problem(api.client.post(f"/api/v1/deliveries/{job_id}/retry"), 409)
    assert state.value in problem["detail"]
    assert api.job(job_id).state == state
    assert api.broker_messages(DELIVERY_QUEUE) == []


def test_retry_problems(api: Api) -> None:
    assert_problem(api.client.post("/api/v1/deliveries/999999/retry"), 404)
    assert_problem(api.client.post("/api/v1/deliveries/0/retry"), 422)
    assert_problem(api.client.post("/api/v1/deliveries/x/retry"), 422)


# destinations


@pytest.fixture
def echo_peer() -> Iterator[int]:
    """An in-process Verification SCP (AE ARCHIVE) on a free port."""
    port = free_port()
    ae = AE(ae_title="ARCHIVE")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda _: 0)])
    assert server is not None
    yield port
    server.shutdown()


def test_destinations_are_listed_and_echoed(make_api: Callable[..., Api], echo_peer: int) -> None:
    api = make_api(
        destinations={
            "ARCHIVE": {"ae_title": "ARCHIVE", "host": "127.0.0.1", "port": echo_peer},
            "NOBODY": {"ae_title": "PACS", "host": "127.0.0.1", "port": free_port()},
        },
        delivery_timeout_s=3.0,
    )
    assert api.client.get("/api/v1/destinations").json() == [
        {"name": "ARCHIVE", "ae_title": "ARCHIVE", "host": "127.0.0.1", "port": echo_peer, "tls": False},
        {
            "name": "NOBODY",
            "ae_title": "PACS",
            "host": "127.0.0.1",
            "port": api.settings.destinations["NOBODY"].port,
            "tls": False,
        },
    ]
    echo = api.client.post("/api/v1/destinations/ARCHIVE/echo")
    assert echo.status_code == 200
    body = echo.json()
    assert (body["destination"], body["ae_title"], body["status"]) == ("ARCHIVE", "ARCHIVE", 0)
    assert body["round_trip_s"] > 0
    unreachable = assert_problem(api.client.post("/api/v1/destinations/NOBODY/echo"), 502)
    assert (unreachable["error"], unreachable["destination"]) == ("PeerUnreachable", "NOBODY")


def test_destination_problems(api: Api) -> None:
    assert_problem(api.client.post("/api/v1/destinations/ELSEWHERE/echo"), 404)
    assert_problem(api.client.post("/api/v1/destinations/-bad/echo"), 422)
    assert_problem(api.client.post(f"/api/v1/destinations/{'N' * 65}/echo"), 422)
    assert api.client.get("/api/v1/destinations/NOBODY/echo").status_code == 405


def test_no_destinations_is_an_empty_list(make_api: Callable[..., Api]) -> None:
    assert make_api().client.get("/api/v1/destinations").json() == []


# reviews and site limits (tests/test_reviews.py and tests/test_calibrate.py check them in depth)


def test_reviews_and_limits_answer(api: Api) -> None:
    path = f"/api/v1/series/{DONE_UID}/reviews"
    created = api.client.post(path, json={"verdict": "non_diagnostic", "kinds": ["motion"]})
    assert created.status_code == 201, created.text
    assert created.json()["reviewer"] == "anonymous"
    assert [item["id"] for item in api.client.get(path).json()] == [created.json()["id"]]
    assert api.client.get("/api/v1/reviews/agreement?by=protocol").json()[0]["reviews"] == 1
    assert api.client.get("/api/v1/limits").json()["proposal"] == []
    proposal = api.client.post("/api/v1/limits/proposal")
    assert proposal.status_code == 201, proposal.text
    applied = api.client.post(f"/api/v1/limits/{proposal.json()['proposal']}/apply")
    assert applied.status_code == 200, applied.text


# trends, drift and pairwise ranking (tests/test_trends.py and tests/test_pairs.py check them in depth)


def test_trends_drift_and_a_pair_judgement_answer(make_api: Callable[..., Api]) -> None:
    api = make_api()
    scored = [f"{ROOT}.6.{n}" for n in (1, 2)]
    with api.sessions.begin() as session:
        for n, uid in enumerate(scored):
            receive(session, uid, 1, T0 + timedelta(hours=1, minutes=n))
        queued = queue_quiet_series(session, T0 + timedelta(hours=2), T0 + timedelta(hours=2))
        assert {series_id(session, uid) for uid in scored} <= set(queued)
        for n, uid in enumerate(scored):
            doc = document(SeriesStatus.DONE, Flag.PASS) | {"quality": 70.0 + n, "findings": []}
            assess(session, series_id(session, uid), T0 + timedelta(hours=3), doc)
    trends = api.client.get("/api/v1/trends").json()
    assert [point["series_instance_uid"] for point in trends["points"]] == scored
    assert api.client.get("/api/v1/drift").json()[0]["n"] == 2
    pair = api.client.get("/api/v1/pairs/next").json()
    assert {pair["left"], pair["right"]} == set(scored)
    judged = api.client.post("/api/v1/pairs", json={**pair, "choice": "similar"})
    assert judged.status_code == 201, judged.text
    assert api.client.get("/api/v1/pairs/next").status_code == 204
    assert api.client.get("/api/v1/pairs/export").json()["pairs"][0]["choice"] == "similar"


# the QC page and its images (tests/test_images.py, test_session.py, test_page.py check them in depth)


def test_the_page_and_the_image_routes_answer(make_api: Callable[..., Api]) -> None:
    import numpy as np

    from qcgate.synthetic.dicom_series import mr_series_datasets

    api = make_api()

    # the seeded instances of DONE_UID name spool files x/1.dcm to x/3.dcm: write real ones there
    volume = np.linspace(0, 100, 3 * 16 * 16, dtype=np.float32).reshape(3, 16, 16)
    (api.settings.spool_dir / "x").mkdir(parents=True)
    for ds in mr_series_datasets(volume, series_description="page", series_instance_uid=DONE_UID):
        ds.save_as(api.settings.spool_dir / "x" / f"{ds.InstanceNumber}.dcm", enforce_file_format=True)
    for path in ("mosaic.png", "slices/1.png", "images"):
        response = api.client.get(f"/api/v1/series/{DONE_UID}/{path}")
        assert response.status_code == 200, (path, response.text)
    for path in ("/", "/worklist/rows", f"/series/{DONE_UID}", "/trends", "/pairs", "/admin/limits"):
        response = api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    assert api.client.get("/static/page.js").status_code == 200
    assert api.client.get("/login", follow_redirects=False).status_code == 303, "no clients: no login"
    assert make_api(api_tokens=TOKEN).client.get("/login").status_code == 200


# POST /login and /logout answer 303 (post/redirect/get) and never a 2xx: tests/test_session.py
REDIRECT_ONLY = {("POST", "/login"), ("POST", "/logout")}


# bearer tokens

PATH_EXAMPLES = {
    "series_uid": DONE_UID,
    "study_uid": STUDY_UID,
    "sop_uid": SR_V2_UID,
    "name": "NOBODY",
    "proposal_id": 1,
    "number": 1,
}


def concrete(path: str, api: Api) -> str:
    """The path template with a seeded row's identifier in each parameter."""
    return path.format(**PATH_EXAMPLES, job_id=api.seeded.jobs[DeliveryState.DEAD])


# A token with a character outside ASCII: secrets.compare_digest refuses to compare such str (it
# raised TypeError, a 500, before tokens were compared as bytes).
NON_ASCII = {"Authorization": "Bearer caf\u00e9".encode()}


def test_bearer_tokens_guard_every_api_route_but_not_health(make_api: Callable[..., Api]) -> None:
    api = make_api(
        api_tokens=f"{TOKEN},other",
        destinations={"NOBODY": {"ae_title": "PACS", "host": "127.0.0.1", "port": free_port()}},
        delivery_timeout_s=3.0,
    )
    guarded = [(method, path) for method, path in app_routes(api.app) if path.startswith("/api/v1/")]
    assert len(guarded) >= 12
    for method, template in guarded:
        path = concrete(template, api)
        wrong = ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, NON_ASCII)
        for headers in wrong:
            denied = api.client.request(method, path, headers=headers)
            assert_problem(denied, 401)
            assert denied.headers["www-authenticate"] == "Bearer", path
        allowed = api.client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code not in (401, 403), (path, allowed.text)
        assert allowed.status_code < 500 or template.endswith("/echo"), (path, allowed.text)
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert api.client.get(path).status_code == 200, path
    assert api.client.get("/api/v1/series", headers={"Authorization": "Bearer other"}).status_code == 200


CLIENT_TOKENS = {role: f"{role}-client-token-0123456789" for role in ("read", "images", "operate")}


def test_named_clients_get_what_their_role_allows_and_the_access_log_names_them(
    make_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    clients = {f"{role}-desk": {"token": token, "role": role} for role, token in CLIENT_TOKENS.items()}
    api = make_api(api_clients=clients, api_tokens=TOKEN)

    def status(role: str, method: str, path: str) -> int:
        token = TOKEN if role == "admin" else CLIENT_TOKENS[role]
        return api.client.request(method, path, headers={"Authorization": f"Bearer {token}"}).status_code

    report_file = f"/api/v1/reports/{SR_V2_UID}/file"
    rescore = f"/api/v1/series/{DONE_UID}/rescore"
    assert status("read", "GET", f"/api/v1/series/{DONE_UID}") == 200
    assert_problem(
        api.client.get(report_file, headers={"Authorization": f"Bearer {CLIENT_TOKENS['read']}"}), 403
    )
    assert status("images", "GET", report_file) == 200, "the report file carries patient data: images role"
    assert status("images", "POST", rescore) == 403
    with caplog.at_level(logging.INFO, logger="qcgate.access"):
        assert status("operate", "POST", rescore) == 202
        assert status("admin", "GET", "/api/v1/series") == 200, "an unnamed api_token is an admin"
    assert f"client=operate-desk role=operate POST {rescore} -> 202" in caplog.text
    assert "client=token-1 role=admin GET /api/v1/series -> 200" in caplog.text
    assert CLIENT_TOKENS["operate"] not in caplog.text
    assert TOKEN not in caplog.text


# every route against its own OpenAPI document (schemathesis): no 5xx, whatever the schema admits

SCHEMA_EXAMPLES_PER_ROUTE = 30
# 502/504 are this route's answer when the destination does not answer C-ECHO: a gateway error is
# what it reports, not a failure of qcgate.
GATEWAY_ROUTES = {"/api/v1/destinations/{name}/echo"}


def test_no_route_answers_5xx_to_any_request_its_schema_admits(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    server_errors: list[str] = []
    calls: list[str] = []
    for operation in operations:

        @hypothesis.settings(
            max_examples=SCHEMA_EXAMPLES_PER_ROUTE,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
        )
        @hypothesis.given(case=operation.as_strategy())
        def call(case: Any) -> None:
            response = case.call()
            calls.append(case.operation.label)
            allowed = (502, 504) if case.operation.path in GATEWAY_ROUTES else ()
            if response.status_code >= 500 and response.status_code not in allowed:
                server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        call()
    assert server_errors == []
    assert len(calls) >= 5 * len(operations), "the schema generated requests for every route"


# route coverage: keep last


def test_every_route_of_the_app_was_answered_with_a_2xx_here(
    request: pytest.FixtureRequest, route_hits: set[tuple[str, str]], make_api: Callable[..., Api]
) -> None:
    module = request.node.parent
    assert isinstance(module, pytest.Module)
    selected = {item.nodeid for item in request.session.items}
    if any(item.nodeid not in selected for item in module.collect() if isinstance(item, pytest.Function)):
        pytest.skip("only meaningful when the whole module runs")
    routes = set(app_routes(make_api().app)) - REDIRECT_ONLY
    assert len(routes) >= 20
    assert routes - route_hits == set(), "routes no test of this module answered with a 2xx"
