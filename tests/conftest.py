"""Shared fixtures: qcgate on free ports, a private PostgreSQL database, a Redis database, and the
delivery peers qcgate sends to: DCMTK storescp and Orthanc as PACS, a webhook receiver."""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from qcgate.harness.orthanc_peer import ORTHANC, OrthancPeer
from qcgate.harness.peers import QCGate, free_port, qcgate_env
from qcgate.harness.storescp_peer import STORESCP, StorescpPacs
from qcgate.harness.webhook_receiver import WebhookReceiver

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/11"
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


@pytest.fixture(scope="session")
def peers_running() -> None:
    """Start Redis and PostgreSQL (installing them if need be) when a test needs them and they are down."""
    try:
        psycopg.connect(POSTGRES_ADMIN, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except (psycopg.OperationalError, redis.ConnectionError):
        subprocess.run(["bash", str(PEERS_SCRIPT)], check=True)


@pytest.fixture
def postgres_url(peers_running: None) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    name = f"qcgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(peers_running: None) -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


def _require(executable: str, package: str) -> None:
    """Skip, naming the fix, when a peer's binary is absent (``make test`` runs scripts/peers.sh first)."""
    if not Path(executable).exists():
        pytest.skip(f"{executable} is missing: `bash scripts/peers.sh` installs Debian's {package}")


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
