"""Seed a store directly: write datasets into the spool and record them, as the receiver would have.

For tests and benchmarks that need a store with real DICOM files behind it (the page, its images)
without sending anything over DICOM.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydicom.dataset import FileDataset
from sqlalchemy.orm import Session

from qcgate.core.settings import Settings
from qcgate.store.repository import ReceivedInstance, record_instance
from qcgate.store.spool import instance_path


def spool_and_record(
    settings: Settings,
    session: Session,
    datasets: Sequence[FileDataset],
    at: datetime,
    calling_ae: str,
    step: timedelta = timedelta(0),
) -> None:
    """Save each dataset at its spool path and record it, the n-th (from 1) received at ``at + n * step``."""
    for number, ds in enumerate(datasets, 1):
        path = instance_path(settings.spool_dir, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        received = ReceivedInstance(
            study_instance_uid=ds.StudyInstanceUID,
            series_instance_uid=ds.SeriesInstanceUID,
            sop_instance_uid=ds.SOPInstanceUID,
            sop_class_uid=ds.SOPClassUID,
            transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
            modality=ds.Modality,
            station_name=str(ds.StationName),
            series_description=str(ds.SeriesDescription),
            scored=True,
        )
        relative = str(path.relative_to(settings.spool_dir))
        record_instance(session, received, relative, path.stat().st_size, calling_ae, at + number * step)
