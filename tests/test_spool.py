"""UIDs become paths only when they are UIDs; writes are atomic and idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcgate.core.errors import InvalidUid
from qcgate.store.spool import instance_path, validate_uid, write_durably


@pytest.mark.parametrize(
    "uid",
    ["../../x", "1.2/3", "1.2.", ".1.2", "1..2", "1.02", "", "1.2.3\x00x", "1" * 65, "1.2.a", "/etc/passwd"],
)
def test_invalid_uids_are_refused(uid: str) -> None:
    with pytest.raises(InvalidUid):
        validate_uid(uid, "SOPInstanceUID")


def test_valid_uid_loses_its_padding_and_stays_inside_the_spool(tmp_path: Path) -> None:
    assert validate_uid("1.2.840.10008.0\x00", "SOPInstanceUID") == "1.2.840.10008.0"
    path = instance_path(tmp_path, "1.2", "1.2.3", "1.2.3.4")
    assert path == tmp_path / "1.2" / "1.2.3" / "1.2.3.4.dcm"


def test_write_is_atomic_and_a_second_write_replaces_the_first(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "1.2.dcm"
    assert write_durably(target, [b"first"]) == 5
    assert write_durably(target, [b"second", b"!"]) == 7
    assert target.read_bytes() == b"second!"
    assert [p.name for p in target.parent.iterdir()] == ["1.2.dcm"], "a temp file was left behind"
