"""Patient ID, accession number and exam time of a series, read from one spooled instance's header.

The series table keeps no patient data (REST and the logs need none), but a radiographer recalls
a patient by ID while the patient is still on the table. So the worklist reads these three from the
header of the series' first instance, only for callers with the images role, and keeps them in a
bounded memory cache (they do not change within a series). A pruned series shows none.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qcgate.store.tables import Instance

KEPT = 20_000  # headers cached (a few hundred bytes each)
_TAGS = ["PatientID", "AccessionNumber", "StudyDate", "StudyTime", "SeriesDate", "SeriesTime"]


@dataclass(frozen=True)
class PatientFields:
    patient_id: str = ""
    accession_number: str = ""
    exam_time: str = ""  # "YYYY-MM-DD HH:MM" from SeriesDate/Time, else StudyDate/Time


NONE = PatientFields()


def _exam_time(date: str, time: str) -> str:
    stamp = date + (time or "000000")[:6].ljust(6, "0")
    try:  # the scanner's local time, shown as such (DICOM gives no zone unless TimezoneOffsetFromUTC)
        moment = datetime.strptime(stamp, "%Y%m%d%H%M%S")  # noqa: DTZ007
    except ValueError:
        return date
    return f"{moment:%Y-%m-%d %H:%M}"


def read_patient_fields(path: Path) -> PatientFields:
    """The three fields from one instance's header, without reading its pixels."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (OSError, InvalidDicomError):
        return NONE

    def text(keyword: str) -> str:
        return str(ds.get(keyword, "") or "").strip()

    date, time = text("SeriesDate"), text("SeriesTime")
    if not date:
        date, time = text("StudyDate"), text("StudyTime")
    return PatientFields(text("PatientID"), text("AccessionNumber"), _exam_time(date, time) if date else "")


class PatientCache:
    def __init__(self, spool_dir: Path) -> None:
        self.spool_dir = spool_dir
        self._kept: OrderedDict[int, PatientFields] = OrderedDict()
        self._lock = threading.Lock()

    def fields(self, session: Session, series_ids: list[int]) -> dict[int, PatientFields]:
        """The fields of each series (by id); one query for the first instances of those not cached."""
        with self._lock:
            found = {sid: self._kept[sid] for sid in series_ids if sid in self._kept}
        missing = [sid for sid in series_ids if sid not in found]
        if missing:
            firsts = (
                select(func.min(Instance.id))
                .where(Instance.series_id.in_(missing))
                .group_by(Instance.series_id)
            )
            rows = session.execute(
                select(Instance.series_id, Instance.spool_path).where(Instance.id.in_(firsts))
            )
            paths: dict[int, str] = {}
            for series_id, spool_path in rows:
                paths[series_id] = spool_path
            for sid in missing:
                found[sid] = read_patient_fields(self.spool_dir / paths[sid]) if sid in paths else NONE
            with self._lock:
                for sid in missing:
                    self._kept[sid] = found[sid]
                while len(self._kept) > KEPT:
                    self._kept.popitem(last=False)
        return found
