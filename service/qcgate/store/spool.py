"""Durable instance storage: nothing is acknowledged before its bytes and directory entry are on disk.

Layout: ``<spool>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``. Every path
component is a validated UID, so a hostile UID such as ``../../x`` can never leave the spool (the
DCMTK CVE-2022-2119 class of bug). Writing the same SOP Instance UID twice replaces the file
atomically, so duplicates are idempotent.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from qcgate.core.errors import DiskWatermark, InvalidUid, SpoolWriteFailed

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def validate_uid(uid: str, keyword: str) -> str:
    """Return ``uid`` stripped of DICOM padding if it is a valid UID, else raise :class:`InvalidUid`."""
    candidate = uid.rstrip("\x00 ")
    if not candidate or len(candidate) > 64 or not _UID.match(candidate):
        raise InvalidUid(f"{keyword} is not a valid DICOM UID")
    return candidate


def instance_path(spool_dir: Path, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """The spool path of an instance; raises :class:`InvalidUid` for any UID that is not one."""
    return (
        spool_dir
        / validate_uid(study_uid, "StudyInstanceUID")
        / validate_uid(series_uid, "SeriesInstanceUID")
        / f"{validate_uid(sop_uid, 'SOPInstanceUID')}.dcm"
    )


def check_free_space(spool_dir: Path, min_free_mb: int) -> None:
    """Refuse early (0xA700) rather than fail half-way through writing when the disk fills."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(spool_dir).free // (1024 * 1024)
    if free_mb < min_free_mb:
        raise DiskWatermark(f"{free_mb} MB free in the spool, below the {min_free_mb} MB watermark")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_directories(directory: Path) -> None:
    """Create missing parents and fsync each new entry's parent so the directories survive a crash."""
    missing: list[Path] = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for new_directory in reversed(missing):
        new_directory.mkdir(exist_ok=True)
        _fsync_directory(new_directory.parent)


def replace_durably(target: Path, chunks: list[bytes | memoryview]) -> int:
    """Write ``chunks`` to ``target`` via temp file, fsync, rename and directory fsync, so that
    ``target`` is either absent, its old content, or all of the new; returns the bytes written.

    OS errors propagate as they are, and leave no partial file behind.
    """
    _make_directories(target.parent)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".part")
    try:
        size = 0
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                size += handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return size


def write_durably(target: Path, chunks: list[bytes | memoryview]) -> int:
    """:func:`replace_durably` for a received instance or a report: any OS error becomes
    :class:`SpoolWriteFailed` (0xA710). Returns the number of bytes written."""
    try:
        return replace_durably(target, chunks)
    except OSError as exc:
        raise SpoolWriteFailed(f"could not store instance durably: {exc.strerror}") from exc
