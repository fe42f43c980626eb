"""Settings precedence, list parsing, and a README that documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from qcgate.cli.main import main as cli_main
from qcgate.core.settings import Settings, get_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_flag_beats_environment_beats_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "qcgate.yaml"
    config.write_text("quiet_period_s: 30\nae_title: FROMYAML\nthresholds:\n  snrd: {warn: 7, fail: 2}\n")
    monkeypatch.setenv("QCGATE_CONFIG", str(config))
    monkeypatch.setenv("QCGATE_AE_TITLE", "FROMENV")
    settings = get_settings(dicom_port=4242)
    assert settings.quiet_period_s == 30
    assert settings.ae_title == "FROMENV"
    assert settings.dicom_port == 4242
    assert settings.thresholds["snrd"].warn == 7
    assert get_settings(ae_title="FROMFLAG").ae_title == "FROMFLAG"


def test_lists_from_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCGATE_ALLOWED_CALLING_AES", "MR1, MR2")
    assert get_settings().allowed_calling_aes == ["MR1", "MR2"]


def test_bad_values_and_missing_config_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="ae_title"):
        get_settings(ae_title="A" * 17)
    with pytest.raises(ValidationError, match="no_such_setting"):
        get_settings(no_such_setting=1)
    with pytest.raises(ValidationError, match="receiver_processes above 1 share one DICOM port"):
        get_settings(receiver_processes=2, dicom_port=0)
    monkeypatch.setenv("QCGATE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        get_settings()


def test_readme_table_lists_every_setting() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \| `QCGATE_\w+`", README.read_text(), re.MULTILINE))
    assert documented == set(Settings.model_fields)


def test_out_of_the_box_both_listeners_are_on_loopback() -> None:
    settings = get_settings()
    assert (settings.dicom_host, settings.http_host) == ("127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "qcgate.example.org"])
def test_listening_beyond_loopback_needs_its_guard(host: str) -> None:
    with pytest.raises(ValidationError, match="allowed_calling_aes"):
        get_settings(dicom_host=host)
    with pytest.raises(ValidationError, match="api_tokens"):
        get_settings(http_host=host)
    opened = get_settings(dicom_host=host, http_host=host, allowed_calling_aes="MR1", api_tokens="t0ken")
    assert (opened.dicom_host, opened.http_host) == (host, host)
    named = get_settings(http_host=host, api_clients={"ris": {"token": "r" * 16, "role": "read"}})
    assert named.api_clients["ris"].role == "read"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_guard(host: str) -> None:
    assert get_settings(dicom_host=host, http_host=host).dicom_host == host


def test_secrets_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCGATE_API_TOKENS", "tok-4f1e9a,tok-77b2c0")
    monkeypatch.setenv("QCGATE_DATABASE_URL", "postgresql+psycopg://qcgate:pw-9d3e@db/qcgate")
    monkeypatch.setenv("QCGATE_BROKER_URL", "redis://:pw-51aa@redis:6379/0")
    monkeypatch.setenv("QCGATE_API_CLIENTS", '{"ris": {"token": "named-client-3e8f21", "role": "read"}}')
    settings = get_settings()
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("tok-4f1e9a", "tok-77b2c0", "pw-9d3e", "pw-51aa", "named-client-3e8f21"):
        assert secret not in shown
    assert settings.effective_database_url == "postgresql+psycopg://qcgate:pw-9d3e@db/qcgate"
    assert settings.effective_broker_url == "redis://:pw-51aa@redis:6379/0"
    assert [token.get_secret_value() for token in settings.api_tokens] == ["tok-4f1e9a", "tok-77b2c0"]


def test_a_refused_setting_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: a rejected webhook secret was echoed at start (pydantic prints the input)."""
    monkeypatch.setenv("QCGATE_WEBHOOKS", '{"ris": {"url": "http://ris.example", "secret": "short-S3CRET"}}')
    assert cli_main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "webhooks.ris.secret: Value should have at least 16 items" in err
    assert "S3CRET" not in err
