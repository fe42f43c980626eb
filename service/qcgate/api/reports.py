"""``/api/v1/.../reports``: the SR and KOS documents qcgate issued, listed and downloadable."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from qcgate.api.deps import SessionDep, SettingsDep, require_role
from qcgate.api.schemas import ReportList, ReportPublic
from qcgate.api.series import UidPath
from qcgate.core.errors import NotFound
from qcgate.core.settings import Role
from qcgate.store.delivery_repository import report_by_uid, reports_of_series
from qcgate.store.repository import series_by_uid
from qcgate.store.tables import Report

router = APIRouter(prefix="/api/v1", tags=["reports"])
DICOM_MEDIA_TYPE = "application/dicom"


def report_public(report: Report) -> ReportPublic:
    return ReportPublic(
        kind=report.kind,
        sop_instance_uid=report.sop_instance_uid,
        sop_class_uid=report.sop_class_uid,
        series_instance_uid=report.series_instance_uid,
        instance_number=report.instance_number,
        study_instance_uid=report.series.study.study_instance_uid,
        evaluated_series_instance_uid=report.series.series_instance_uid,
        assessment_id=report.assessment_id,
        predecessor_sop_instance_uid=report.predecessor.sop_instance_uid if report.predecessor else None,
        size_bytes=report.size_bytes,
        created_at=report.created_at,
        href=f"/api/v1/reports/{report.sop_instance_uid}/file",
    )


@router.get(
    "/series/{series_uid}/reports", response_model=ReportList, summary="Every report issued for a series"
)
def get_series_reports(session: SessionDep, series_uid: UidPath) -> ReportList:
    series = series_by_uid(session, series_uid)
    if series is None:
        raise NotFound(f"no series {series_uid}")
    return ReportList(items=[report_public(report) for report in reports_of_series(session, series.id)])


@router.get("/reports/{sop_uid}", response_model=ReportPublic, summary="One report's metadata")
def get_report(session: SessionDep, sop_uid: UidPath) -> ReportPublic:
    report = report_by_uid(session, sop_uid)
    if report is None:
        raise NotFound(f"no report {sop_uid}")
    return report_public(report)


@router.get(
    "/reports/{sop_uid}/file",
    dependencies=[Depends(require_role(Role.IMAGES))],  # an SR carries the patient's name and ID
    summary="One report as a DICOM Part 10 file",
    response_class=FileResponse,
    responses={200: {"content": {DICOM_MEDIA_TYPE: {}}}},
)
def get_report_file(session: SessionDep, settings: SettingsDep, sop_uid: UidPath) -> FileResponse:
    report = report_by_uid(session, sop_uid)
    if report is None:
        raise NotFound(f"no report {sop_uid}")
    path = settings.sr_dir / report.path
    if not path.is_file():
        raise NotFound(f"the file of report {sop_uid} is gone from the SR store")
    return FileResponse(path, media_type=DICOM_MEDIA_TYPE, filename=f"{sop_uid}.dcm")
