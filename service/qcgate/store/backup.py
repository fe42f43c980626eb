"""Backup and restore of what qcgate cannot make again: the results database, the SR files, the settings.

``qcgate backup FILE.tar.gz`` writes one archive: ``qcgate.db`` (an online copy through SQLite's
backup API, consistent while the service runs), ``sr/`` (every issued SR and KOS) and
``settings.json`` (the effective settings with secrets masked: tokens, passwords and webhook keys
are never written; supply them again on restore). Spooled pixels are not included: they are
re-sendable from the scanner or PACS and are pruned by retention anyway.

``qcgate restore FILE.tar.gz`` unpacks into an empty data directory; it refuses one that already
holds a database or SR files, so a restore never mixes two histories. With PostgreSQL
(``database_url``), use ``pg_dump``/``pg_restore`` for the database; these commands refuse it.
"""

from __future__ import annotations

import json
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from qcgate.core.settings import Settings

DATABASE_MEMBER, SR_MEMBER, SETTINGS_MEMBER = "qcgate.db", "sr", "settings.json"


class BackupRefused(Exception):
    """The backup or restore cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    reports: int
    database_bytes: int


def _sqlite_path(settings: Settings) -> Path:
    url = settings.effective_database_url
    if not url.startswith("sqlite:///"):
        raise BackupRefused("the database is not the embedded SQLite: back it up with pg_dump")
    return Path(url.removeprefix("sqlite:///"))


def backup(settings: Settings, archive: Path) -> BackupSummary:
    """Write the archive of ``settings``' data directory (see the module docstring)."""
    database = _sqlite_path(settings)
    if not database.is_file():
        raise BackupRefused(f"no database at {database}: nothing to back up")
    with tempfile.TemporaryDirectory(prefix="qcgate-backup-") as temp:
        copy = Path(temp) / DATABASE_MEMBER
        source, target = sqlite3.connect(database), sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        masked = json.loads(settings.model_dump_json())  # SecretStr fields dump as "**********"
        (Path(temp) / SETTINGS_MEMBER).write_text(json.dumps(masked, indent=1, default=str))
        reports = sorted(path for path in settings.sr_dir.rglob("*") if path.is_file())
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(copy, DATABASE_MEMBER)
            tar.add(Path(temp) / SETTINGS_MEMBER, SETTINGS_MEMBER)
            for report in reports:
                tar.add(report, f"{SR_MEMBER}/{report.relative_to(settings.sr_dir)}")
        return BackupSummary(archive, len(reports), copy.stat().st_size)


def restore(settings: Settings, archive: Path) -> BackupSummary:
    """Unpack the archive into ``settings``' empty data directory."""
    database = _sqlite_path(settings)
    if database.exists() or (settings.sr_dir.exists() and any(settings.sr_dir.iterdir())):
        raise BackupRefused(
            f"{settings.data_dir} already holds a database or SR files: restore into an empty one"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    reports = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if member.name == DATABASE_MEMBER:
                target = database
            elif member.name.startswith(f"{SR_MEMBER}/"):
                target = settings.data_dir / member.name
                reports += 1
            else:
                continue  # settings.json is for the reader; the running settings come from their sources
            if not member.isfile():
                continue
            resolved = target.resolve()
            if settings.data_dir.resolve() not in resolved.parents:
                raise BackupRefused(f"archive member {member.name!r} would land outside the data directory")
            resolved.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None  # a regular file member
            resolved.write_bytes(extracted.read())
    if not database.exists():
        raise BackupRefused(f"{archive} holds no {DATABASE_MEMBER}")
    return BackupSummary(archive, reports, database.stat().st_size)
