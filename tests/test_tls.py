"""TLS for incoming DICOM and HTTPS for the API (issue 12 item 4), with certificates made by the
system's openssl for the test: a TLS association and a TLS request succeed, plaintext ones and
clients without the required certificate do not."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from qcgate.cli.processes import http_config
from qcgate.core.settings import Settings, get_settings
from qcgate.harness.certificates import Certificate, make_ca, make_signed
from qcgate.harness.peers import c_echo, free_port
from qcgate.receiver.scp import start_receiver
from qcgate.store.database import create_database_engine, session_factory, upgrade_database


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Certificate, Certificate, Certificate]:
    """(CA, server certificate, client certificate)."""
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory)
    return ca, make_signed(directory, ca, "qcgate"), make_signed(directory, ca, "scanner")


def settings_with(tmp_path: Path, **overrides: object) -> Settings:
    settings = get_settings(
        data_dir=tmp_path / "data", min_free_disk_mb=0, dicom_port=free_port(), **overrides
    )
    upgrade_database(settings.effective_database_url)
    return settings


def tls_echo(port: int, ca: Certificate, client: Certificate | None) -> int | None:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca.cert_file)
    if client is not None:
        context.load_cert_chain(client.cert_file, client.key_file)
    return c_echo(port, calling_ae="SCANNER", tls=context)


@pytest.fixture
def receiver(tmp_path: Path, pki: tuple[Certificate, Certificate, Certificate]) -> Iterator[int]:
    ca, server, _ = pki
    tls = {"cert_file": server.cert_file, "key_file": server.key_file, "ca_file": ca.cert_file}
    settings = settings_with(tmp_path, dicom_tls=tls)
    running = start_receiver(
        settings, session_factory(create_database_engine(settings.effective_database_url))
    )
    yield settings.dicom_port
    running.shutdown()


def test_a_dicom_association_over_tls_with_a_client_certificate_succeeds(
    receiver: int, pki: tuple[Certificate, Certificate, Certificate]
) -> None:
    ca, _, client = pki
    assert tls_echo(receiver, ca, client) == 0x0000


def test_plaintext_and_certificate_less_associations_are_refused(
    receiver: int, pki: tuple[Certificate, Certificate, Certificate]
) -> None:
    ca, _, _ = pki
    assert c_echo(receiver) is None, "plaintext"
    assert tls_echo(receiver, ca, None) is None, "mutual TLS: a client certificate is required"
    assert tls_echo(receiver, ca, pki[2]) == 0x0000, "the receiver still serves"


def test_the_api_over_https(tmp_path: Path, pki: tuple[Certificate, Certificate, Certificate]) -> None:
    from qcgate.api.app import create_app
    from qcgate.worker.celery_app import create_celery

    ca, server, _ = pki
    settings = settings_with(
        tmp_path, http_port=free_port(), http_tls={"cert_file": server.cert_file, "key_file": server.key_file}
    )
    sessions = session_factory(create_database_engine(settings.effective_database_url))
    app = create_app(settings, sessions, create_celery(settings))
    served = uvicorn.Server(http_config(settings, app))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not served.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"https://127.0.0.1:{settings.http_port}/healthz"
        assert httpx.get(url, verify=ssl.create_default_context(cafile=ca.cert_file)).json() == {
            "status": "ok"
        }
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{settings.http_port}/healthz", timeout=3)
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, timeout=3)  # a certificate nobody here trusts
    finally:
        served.should_exit = True
        thread.join(timeout=10)
