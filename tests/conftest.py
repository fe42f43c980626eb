"""Shared fixtures: qcgate on free ports, a private PostgreSQL database, a Redis database of this
session's own, and the delivery peers qcgate sends to: DCMTK storescp and Orthanc as PACS, a webhook
receiver. A missing peer skips its tests, or fails them under ``CI=true`` (``require_peer``)."""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from qcgate.harness.orthanc_peer import ORTHANC, OrthancPeer
from qcgate.harness.peers import QCGate, free_port, qcgate_env, require_peer
from qcgate.harness.storescp_peer import STORESCP, StorescpPacs
from qcgate.harness.webhook_receiver import WebhookReceiver

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_SERVER = "redis://127.0.0.1:6379"
REDIS_DATABASES = 16  # Redis' default; database 0 holds the claims, 1-15 are for test sessions
REDIS_CLAIM = "qcgate-test:db:{}"
REDIS_CLAIM_TTL_S = 6 * 3600  # renewed by every test that uses Redis
_RELEASE_IF_OURS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_RENEW_IF_OURS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
)
PEERS_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "peers.sh"


@pytest.fixture
def start_qcgate(tmp_path: Path) -> Iterator[Callable[..., QCGate]]:
    """Start qcgate with the given sub-commands (default: ``serve``) and settings; stopped after the test."""
    started: list[QCGate] = []

    def start(*commands: list[str], data_dir: Path | None = None, **settings: str) -> QCGate:
        dicom_port, http_port = free_port(), free_port()
        directory = data_dir or tmp_path / f"qcgate-{len(started)}"
        gate = QCGate(
            data_dir=directory,
            dicom_port=dicom_port,
            http_port=http_port,
            env=qcgate_env(directory, dicom_port, http_port, **settings),
            commands=list(commands) or [["serve"]],
        )
        started.append(gate)
        return gate.start()

    yield start
    for gate in started:
        gate.stop()


def _postgres_answers() -> bool:
    try:
        psycopg.connect(POSTGRES_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def _redis_answers() -> bool:
    try:
        with redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=3) as client:
            client.ping()
    except redis.ConnectionError:
        return False
    return True


@pytest.fixture(scope="session")
def peers_running() -> None:
    """Start Redis and PostgreSQL (installing them if need be) when a test needs them and they are down;
    if they still do not answer, skip (fail under CI=true)."""
    if not (_postgres_answers() and _redis_answers()):
        subprocess.run(["bash", str(PEERS_SCRIPT)], check=False)
    require_peer("PostgreSQL at 127.0.0.1:5432", _postgres_answers())
    require_peer("Redis at 127.0.0.1:6379", _redis_answers())


@pytest.fixture
def postgres_url(peers_running: None) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    name = f"qcgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class RedisClaim:
    """A Redis database this test session holds alone; ``key`` on database 0 holds our ``token``."""

    url: str
    key: str
    token: str


@pytest.fixture(scope="session")
def redis_database(peers_running: None) -> Iterator[RedisClaim]:
    """Claim a free Redis database for this session (SET NX of ``qcgate-test:db:N`` on database 0, with
    an expiry so that a crashed session's claim lapses), so that test runs sharing one Redis server never
    flush each other's queues; released at the end of the session."""
    token = uuid.uuid4().hex
    with redis.Redis.from_url(f"{REDIS_SERVER}/0") as admin:
        for number in range(1, REDIS_DATABASES):
            key = REDIS_CLAIM.format(number)
            if admin.set(key, token, nx=True, ex=REDIS_CLAIM_TTL_S):
                break
        else:
            pytest.fail(f"Redis databases 1-{REDIS_DATABASES - 1} are all claimed by other test runs")
        claim = RedisClaim(f"{REDIS_SERVER}/{number}", key, token)
        with redis.Redis.from_url(claim.url) as client:
            client.flushdb()  # whatever a crashed earlier holder left behind
        yield claim
        with redis.Redis.from_url(claim.url) as client:
            client.flushdb()
        admin.eval(_RELEASE_IF_OURS, 1, key, token)


@pytest.fixture
def redis_url(redis_database: RedisClaim) -> Iterator[str]:
    """This session's Redis database, empty before and after the test; renews the session's claim."""
    with redis.Redis.from_url(f"{REDIS_SERVER}/0") as admin:
        renewed = admin.eval(_RENEW_IF_OURS, 1, redis_database.key, redis_database.token, REDIS_CLAIM_TTL_S)
    assert renewed == 1, f"our claim {redis_database.key} on Redis lapsed and another run may hold it"
    with redis.Redis.from_url(redis_database.url) as client:
        client.flushdb()
        yield redis_database.url
        client.flushdb()


def _require(executable: str, package: str) -> None:
    """Skip (fail under CI=true), naming the fix, when a peer's binary is absent (``make test`` runs
    scripts/peers.sh first)."""
    require_peer(
        executable, Path(executable).exists(), f"`bash scripts/peers.sh` installs Debian's {package}"
    )


@pytest.fixture
def storescp_pacs(tmp_path: Path) -> Iterator[Callable[..., StorescpPacs]]:
    """Start DCMTK storescp PACS peers (``StorescpPacs`` keywords: fault options); stopped after the test."""
    _require(STORESCP, "dcmtk")
    started: list[StorescpPacs] = []

    def start(**options: Any) -> StorescpPacs:
        pacs = StorescpPacs(tmp_path / f"storescp-{len(started)}", **options)
        started.append(pacs)
        return pacs.start()

    yield start
    for pacs in started:
        pacs.stop()


@pytest.fixture
def start_orthanc(tmp_path: Path) -> Iterator[Callable[..., OrthancPeer]]:
    """Start Orthanc PACS peers (``OrthancPeer`` keywords); stopped after the test."""
    _require(ORTHANC, "orthanc")
    started: list[OrthancPeer] = []

    def start(**options: Any) -> OrthancPeer:
        peer = OrthancPeer(tmp_path / f"orthanc-{len(started)}", **options)
        started.append(peer)
        return peer.start()

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
def orthanc(start_orthanc: Callable[..., OrthancPeer]) -> OrthancPeer:
    """One Orthanc that stores from any calling AE, with its REST client at ``orthanc.client``."""
    return start_orthanc()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook endpoint with a fresh secret (``webhook_receiver.secret``) at ``webhook_receiver.url``."""
    with WebhookReceiver(secrets.token_hex(16)) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def page_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded store of real DICOM files for the page and image tests (``tests/page_store.py``),
    made once per module and copied for each app."""
    from qcgate.core.settings import get_settings
    from tests.page_store import seed_page_store

    settings = get_settings(data_dir=tmp_path_factory.mktemp("page-template"))
    seed_page_store(settings)
    return settings.data_dir


@pytest.fixture
def make_app(
    page_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Any]]:
    """``make_app(**settings)``: the API and page on a fresh copy of the seeded store; closed after."""
    from tests.page_store import PageApp, page_app

    made: list[PageApp] = []

    def make(**overrides: Any) -> PageApp:
        made.append(page_app(page_template, tmp_path / f"data-{len(made)}", monkeypatch, **overrides))
        return made[-1]

    yield make
    for app in made:
        app.close()
