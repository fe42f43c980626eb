"""``/api/v1/studies/{uid}``: a study with all its series."""

from __future__ import annotations

from fastapi import APIRouter

from qcgate.api.deps import SessionDep
from qcgate.api.schemas import StudyPublic
from qcgate.api.series import UidPath, series_view
from qcgate.core.errors import NotFound
from qcgate.store.repository import study_by_uid

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


@router.get("/{study_uid}", response_model=StudyPublic, summary="A study and its series")
def get_study(session: SessionDep, study_uid: UidPath) -> StudyPublic:
    study = study_by_uid(session, study_uid)
    if study is None:
        raise NotFound(f"no study {study_uid}")
    return StudyPublic(
        study_instance_uid=study.study_instance_uid, series=[series_view(session, s) for s in study.series]
    )
