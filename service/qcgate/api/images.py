"""``/api/v1/series/{uid}/mosaic.png``, ``/slices/{n}.png`` and ``/images``: the pixels, for people.

Pixels can carry burned-in text or a face, so every route here needs the images role. ``n`` is the
InstanceNumber the console shows (the findings name slices the same way); ``stack`` picks one of a
multi-stack series' stacks by its index in ``/images`` (default: the stack holding slice ``n``, for a
mosaic the one with most slices). ``window`` and ``level`` override the header's VOI window.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from qcgate.api.deps import SessionDep, require_role
from qcgate.api.image_source import ImageSource, SeriesImages, ShownStack
from qcgate.api.series import UidPath
from qcgate.core.errors import NotFound
from qcgate.core.settings import Role
from qcgate.imaging.render import Window, mosaic, png_grey, windowed

router = APIRouter(
    prefix="/api/v1/series", tags=["images"], dependencies=[Depends(require_role(Role.IMAGES))]
)
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}
CACHE_CONTROL = "private, max-age=300"  # per revision in the server's cache; the browser may keep it briefly

WindowQuery = Annotated[
    float | None, Query(gt=0, le=1e7, allow_inf_nan=False, description="VOI window width (rescaled units).")
]
LevelQuery = Annotated[
    float | None,
    Query(ge=-1e7, le=1e7, allow_inf_nan=False, description="VOI window centre (rescaled units)."),
]
StackQuery = Annotated[int | None, Query(ge=0, le=10_000, description="Stack index, as in /images.")]


class StackImages(BaseModel):
    index: int
    label: str
    slices: list[int] = Field(description="InstanceNumber of each slice, in mosaic order.")
    rows: int
    columns: int
    level: float
    window: float
    window_from_header: bool
    mosaic_columns: int
    tile_width: int
    tile_height: int


class SeriesImagesPublic(BaseModel):
    series_instance_uid: str
    revision: int
    default_stack: int
    stacks: list[StackImages]


def image_source(request: Request) -> ImageSource:
    source: ImageSource | None = getattr(request.app.state, "image_source", None)
    if source is None:
        source = request.app.state.image_source = ImageSource(request.app.state.settings)
    return source


SourceDep = Annotated[ImageSource, Depends(image_source)]


def _window(shown: ShownStack, window: float | None, level: float | None) -> Window:
    return Window(
        level if level is not None else shown.window.level,
        window if window is not None else shown.window.window,
    )


def _key(kind: str, stack: int, window: float | None, level: float | None) -> str:
    """The cache file's name: every parameter that changes the pixels, "auto" for the header's window."""
    shown_window = "auto" if window is None else repr(window)
    shown_level = "auto" if level is None else repr(level)
    return f"{kind}-s{stack}-w{shown_window}-l{shown_level}"


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": CACHE_CONTROL})


def _chosen(images: SeriesImages, stack: int | None) -> int:
    if stack is None:
        return images.default_stack()
    if stack >= len(images.stacks):
        raise NotFound(f"the series has {len(images.stacks)} stacks; there is no stack {stack}")
    return stack


@router.get("/{series_uid}/images", response_model=SeriesImagesPublic, summary="The series' stacks as shown")
def get_images(session: SessionDep, source: SourceDep, series_uid: UidPath) -> SeriesImagesPublic:
    revision, files = source.current(session, series_uid)
    session.close()  # decoding takes a while: hold no connection meanwhile
    images = source.images(series_uid, revision, files)
    stacks = []
    for index, shown in enumerate(images.stacks):
        count, rows, columns = shown.stack.voxels.shape
        layout = shown.layout
        stacks.append(
            StackImages(
                index=index,
                label=shown.stack.label,
                slices=[shown.stack.slice_number(i) for i in range(count)],
                rows=rows,
                columns=columns,
                level=shown.window.level,
                window=shown.window.window,
                window_from_header=shown.window_from_header,
                mosaic_columns=layout.columns,
                tile_width=layout.tile_width,
                tile_height=layout.tile_height,
            )
        )
    return SeriesImagesPublic(
        series_instance_uid=series_uid, revision=revision, default_stack=images.default_stack(), stacks=stacks
    )


@router.get(
    "/{series_uid}/mosaic.png",
    summary="Every slice of one stack as a grid of small tiles",
    response_class=Response,
    responses=PNG,
)
def get_mosaic(
    session: SessionDep,
    source: SourceDep,
    series_uid: UidPath,
    window: WindowQuery = None,
    level: LevelQuery = None,
    stack: StackQuery = None,
) -> Response:
    revision, files = source.current(session, series_uid)
    session.close()  # a cached mosaic is a file read; an uncached one decodes without a connection held

    def render() -> bytes:
        images = source.images(series_uid, revision, files)
        shown = images.stacks[_chosen(images, stack)]
        return png_grey(mosaic(shown.stack.voxels, _window(shown, window, level)))

    name = _key("mosaic", -1 if stack is None else stack, window, level)
    return _png(source.png(series_uid, revision, name, render))


@router.get(
    "/{series_uid}/slices/{number}.png",
    summary="One slice, by InstanceNumber",
    response_class=Response,
    responses=PNG,
)
def get_slice(
    session: SessionDep,
    source: SourceDep,
    series_uid: UidPath,
    number: Annotated[int, Path(ge=-(2**31), le=2**31 - 1, description="InstanceNumber of the slice.")],
    window: WindowQuery = None,
    level: LevelQuery = None,
    stack: StackQuery = None,
) -> Response:
    revision, files = source.current(session, series_uid)
    session.close()

    def render() -> bytes:
        images = source.images(series_uid, revision, files)
        candidates = [_chosen(images, stack)] if stack is not None else range(len(images.stacks))
        for index in candidates:
            shown = images.stacks[index]
            position = shown.index_of(number)
            if position is not None:
                return png_grey(windowed(shown.stack.voxels[position], _window(shown, window, level)))
        where = f"stack {stack}" if stack is not None else "the series"
        raise NotFound(f"{where} has no slice with InstanceNumber {number}")

    name = _key(f"slice{number}", -1 if stack is None else stack, window, level)
    try:
        return _png(source.png(series_uid, revision, name, render))
    except ValueError as exc:  # a window the header gives that cannot be drawn
        raise HTTPException(409, str(exc)) from exc
