"""``/api/v1/destinations``: the configured DICOM destinations, and a C-ECHO to check one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from qcgate.api.deps import SettingsDep, require_role
from qcgate.api.problems import problem
from qcgate.api.schemas import DestinationPublic, EchoResult
from qcgate.core.errors import DeliveryFailed, NotFound
from qcgate.core.settings import Role
from qcgate.delivery.dicom_send import echo

router = APIRouter(prefix="/api/v1/destinations", tags=["destinations"])
NamePath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


@router.get("", response_model=list[DestinationPublic], summary="Configured DICOM destinations")
def get_destinations(settings: SettingsDep) -> list[DestinationPublic]:
    return [
        DestinationPublic(name=name, ae_title=d.ae_title, host=d.host, port=d.port, tls=d.tls is not None)
        for name, d in settings.destinations.items()
    ]


@router.post(
    "/{name}/echo",
    dependencies=[Depends(require_role(Role.OPERATE))],
    response_model=EchoResult,
    summary="C-ECHO a destination now",
    responses={502: {"description": "The destination did not answer the C-ECHO with Success."}},
)
def post_echo(settings: SettingsDep, name: NamePath) -> EchoResult | JSONResponse:
    destination = settings.destinations.get(name)
    if destination is None:
        raise NotFound(f"no destination {name!r}")
    try:
        round_trip = echo(destination, calling_ae=settings.ae_title, timeout_s=settings.delivery_timeout_s)
    except DeliveryFailed as exc:
        return problem(502, str(exc), error=type(exc).__name__, destination=name)
    return EchoResult(destination=name, ae_title=destination.ae_title, round_trip_s=round_trip)
