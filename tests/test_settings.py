"""Settings precedence, list parsing, and a README that documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

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
    monkeypatch.setenv("QCGATE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        get_settings()


def test_readme_table_lists_every_setting() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \| `QCGATE_\w+`", README.read_text(), re.MULTILINE))
    assert documented == set(Settings.model_fields)
