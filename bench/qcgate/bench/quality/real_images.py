"""Real MR images that installed packages ship, written as DICOM series: qcgate's evaluation set.

No public MR data set can be downloaded here, so the only real scans qcgate can be judged on are the
handful that pydicom, pydicom-data, dipy and nibabel carry for their own tests. They are precious:
a metric trained on any of them, or on anything derived from them, would be judged on what it has
seen. They are therefore **never for training** (``models/evaluation_guard.py`` enforces it), every
image handed out here carries ``provenance["kind"] == "real-evaluation"``, and nothing is fetched at
run time (dipy's ``fetch_*`` functions and pydicom's download fallback are never called).

Each source is converted once into an MR Image Storage series
(:func:`qcgate.synthetic.dicom_series.mr_series_datasets`, with its real spacing and nearest standard
plane) in a cache folder, and the volume is read back from those files with the service's own stack
builder, so the benchmark scores exactly what the gateway would see if a scanner sent that series.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from qcgate.imaging.volume import build_stacks
from qcgate.synthetic.dicom_series import Orientation, mr_series_datasets, write_series

# dipy and nibabel are imported inside the loaders: they are slow to import and only needed when a
# source is converted.

__all__ = [
    "DEFAULT_CACHE_DIR",
    "EVALUATION_KIND",
    "SOURCES",
    "EvaluationImage",
    "crop_slices",
    "evaluation_images",
]

EVALUATION_KIND = "real-evaluation"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[3] / "out" / "real-images"
_CONVERSION = "v2"  # bump when a conversion changes: caches of other versions are then ignored
_UID_SEED = f"qcgate real evaluation images {_CONVERSION}"  # same UIDs everywhere, so caches agree
_STUDY_DATETIME = datetime(2000, 1, 1, tzinfo=UTC)  # fixed, so a conversion gives identical bytes
_ALONG_COLUMNS = "phase encoding assumed along columns (DICOM COL)"
_EPI_ENCODING = "phase encoding assumed anterior-posterior, as in EPI"


@dataclass(frozen=True)
class EvaluationImage:
    """One real MR volume the benchmark degrades and scores; never training data.

    ``volume`` is float32 (S, R, C) as the service reads it back from ``series_dir`` (which holds
    the whole volume when :func:`crop_slices` kept a slab of it).
    ``phase_encode_axis`` is the array axis of ``volume`` (or of any one slice of it) along which
    the phase was encoded, counted from the end as :func:`qcgate.models.corruption.corrupt` takes it:
    -2 (the row index changes, DICOM "COL") or -1 (the column index changes, DICOM "ROW").
    """

    name: str
    anatomy: str
    volume: np.ndarray  # (S, R, C) float32
    spacing_mm: tuple[float, float, float]  # (slice, row, column)
    phase_encode_axis: int
    orientation: Orientation
    series_dir: Path
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # The share of the displayed k-space acquired along (rows' axis, columns' axis) where the source's
    # header says (qcgate.imaging.acquisition); every copy's series carries it, as a scanner's would.
    acquired_share: tuple[float, float] | None = None


@dataclass(frozen=True)
class _Raw:
    """A source as loaded, before it becomes a DICOM series; ``notes`` say what had to be assumed."""

    volume: np.ndarray  # (S, R, C), rows and columns laid out as ``orientation`` is in DICOM
    spacing_mm: tuple[float, float, float]
    orientation: Orientation
    phase_encode_axis: int
    origin: str
    notes: tuple[str, ...] = ()
    acquired_share: tuple[float, float] | None = None


@dataclass(frozen=True)
class _Source:
    name: str
    anatomy: str
    package: str
    load: Callable[[], _Raw]


def _pydicom_file(file_name: str, orientation: Orientation, *notes: str) -> Callable[[], _Raw]:
    """A file of pydicom's own test files or of the pydicom-data package (both installed)."""

    def load() -> _Raw:
        from pydicom.data import get_testdata_file

        path = get_testdata_file(file_name)
        if path is None:
            raise FileNotFoundError(f"{file_name} is not installed (the pydicom-data package provides it)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stack = build_stacks([pydicom.dcmread(path)])[0]
        if stack.phase_encode_axis is None:
            axis, encoding = -2, _ALONG_COLUMNS
        else:
            axis, encoding = stack.phase_encode_axis - 3, "phase encoding from the header"
        told: tuple[str, ...] = ()
        if stack.acquired_share is not None and stack.acquired_share != (1.0, 1.0):
            told = (f"acquired share of k-space from the header {stack.acquired_share}",)
        return _Raw(
            stack.voxels,
            stack.spacing_mm,
            orientation,
            axis,
            f"pydicom {file_name}",
            (*notes, encoding, *told),
            stack.acquired_share,
        )

    return load


def _axial_from_nifti(
    path: Path, pick: Callable[[np.ndarray], np.ndarray], spacing_mm: tuple[float, float, float] | None
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The 3D volume ``pick`` chooses from a NIfTI file, re-laid as DICOM axial slices.

    In RAS+ voxel order (i right, j anterior, k superior) the first two axes are flipped to the
    patient's left and posterior, DICOM's frame, and k becomes the slice axis: (S, R, C) with
    columns stepping left and rows posterior, as :func:`mr_series_datasets` lays out "axial".
    """
    import nibabel

    image = nibabel.as_closest_canonical(nibabel.load(path))
    ras = pick(np.asarray(image.dataobj, dtype=np.float32))
    zooms = [round(float(z), 4) for z in image.header.get_zooms()[:3]]
    spacing = spacing_mm or (zooms[2], zooms[1], zooms[0])
    return np.ascontiguousarray(ras[::-1, ::-1, :].transpose(2, 1, 0)), spacing


def _dipy_t1_coronal() -> _Raw:
    """dipy's T1 coronal slice: a 256x256 array, head up, without a header (1 mm assumed)."""
    from dipy.data import get_fnames  # shipped files only: dipy's fetch_* functions download

    slice_ = np.load(get_fnames(name="t1_coronal_slice")).astype(np.float32)
    notes = ("no header: 1 mm spacing assumed", _ALONG_COLUMNS)
    return _Raw(slice_[None], (1.0, 1.0, 1.0), "coronal", -2, "dipy t1_coronal_slice.npy", notes)


def _dipy_b0_brain() -> _Raw:
    """dipy's ``S0_10``: ten axial b=0 slices of a diffusion scan (128x128, 2 mm)."""
    from dipy.data import get_fnames

    volume, spacing = _axial_from_nifti(Path(get_fnames(name="S0_10")), lambda d: d[..., 0], (2.0, 2.0, 2.0))
    notes = ("the header's 53 mm slice spacing is not physical: 2 mm used", _EPI_ENCODING)
    return _Raw(volume, spacing, "axial", -2, "dipy S0_10slices.nii.gz", notes)


def _dipy_piesno_dwi() -> _Raw:
    """dipy's ``test_piesno``: one axial slice acquired with 14 diffusion encodings; the first.

    Its affine is an identity placeholder, so the slice is laid out as stored: that puts the
    brain's long (anterior-posterior) axis along the rows, as an axial slice has it.
    """
    import nibabel
    from dipy.data import get_fnames

    stored = np.asarray(
        nibabel.Nifti1Image.from_filename(get_fnames(name="test_piesno")).dataobj, dtype=np.float32
    )
    notes = (
        "first of 14 diffusion volumes",
        "the header's affine and 1 mm are placeholders: laid out as stored, 2 mm assumed",
        _EPI_ENCODING,
    )
    return _Raw(stored[None, :, :, 0], (2.0, 2.0, 2.0), "axial", -2, "dipy test_piesno.nii.gz", notes)


def _nibabel_epi() -> _Raw:
    """nibabel's ``example4d``: an EPI time series (128x96x24, two volumes); the first volume."""
    from nibabel.testing import data_path

    volume, spacing = _axial_from_nifti(Path(str(data_path)) / "example4d.nii.gz", lambda d: d[..., 0], None)
    notes = ("first of two volumes", _EPI_ENCODING)
    return _Raw(volume, spacing, "axial", -2, "nibabel example4d.nii.gz", notes)


def _dipy_aniso_brain() -> _Raw:
    """dipy's ``aniso_vox``: a real brain volume (58x58x24 at 4x4x5 mm) with its real background noise."""
    from dipy.data import get_fnames

    volume, spacing = _axial_from_nifti(Path(get_fnames(name="aniso_vox")), lambda d: d, None)
    return _Raw(volume, spacing, "axial", -2, "dipy aniso_vox.nii.gz", (_ALONG_COLUMNS,))


def _nibabel_epi_phantom() -> _Raw:
    """nibabel's ``phantom_EPI_asc_CLEAR_2_1.PAR``: a Philips EPI of a phantom (64x64x9, three
    dynamics) with the scanner's own Nyquist ghosting; the first dynamic."""
    from nibabel.testing import data_path

    path = Path(str(data_path)) / "phantom_EPI_asc_CLEAR_2_1.PAR"
    volume, spacing = _axial_from_nifti(path, lambda d: d[..., 0], None)
    notes = ("first of three dynamics", _EPI_ENCODING)
    return _Raw(volume, spacing, "axial", -2, "nibabel phantom_EPI_asc_CLEAR_2_1.PAR", notes)


SOURCES: dict[str, _Source] = {
    source.name: source
    for source in (
        _Source(
            "mr2-shoulder",
            "shoulder",
            "pydicom-data",
            _pydicom_file("MR2_UNCR.dcm", "sagittal", "oblique plane written as its nearest, sagittal"),
        ),
        _Source(
            "siemens-abdomen",
            "abdomen",
            "pydicom-data",
            _pydicom_file("MR-SIEMENS-DICOM-WithOverlays.dcm", "axial"),
        ),
        _Source(
            "emri-head",
            "head",
            "pydicom-data",
            _pydicom_file("emri_small.dcm", "axial", "no geometry in the file: axial plane assumed"),
        ),
        _Source("mr-small-head", "head", "pydicom", _pydicom_file("MR_small.dcm", "axial")),
        _Source("dipy-t1-coronal", "brain", "dipy", _dipy_t1_coronal),
        _Source("dipy-b0-brain", "brain", "dipy", _dipy_b0_brain),
        _Source("dipy-piesno-dwi", "brain", "dipy", _dipy_piesno_dwi),
        _Source("nibabel-epi", "brain", "nibabel", _nibabel_epi),
        _Source("dipy-aniso-brain", "brain", "dipy", _dipy_aniso_brain),
        _Source("nibabel-epi-phantom", "phantom", "nibabel", _nibabel_epi_phantom),
    )
}


def evaluation_images(
    names: Sequence[str] | None = None, *, cache_dir: Path = DEFAULT_CACHE_DIR, max_slices: int | None = None
) -> list[EvaluationImage]:
    """The real evaluation images (all, or those named), each read back from its cached DICOM series.

    A source is converted on first use and its series reused after that (the UIDs are seeded, so a
    rewrite gives identical files). ``max_slices`` keeps a central slab of larger volumes.
    """
    unknown = sorted(set(names or ()) - set(SOURCES))
    if unknown:
        raise ValueError(f'Argument "names" has unknown images {unknown}; known: {sorted(SOURCES)}.')
    chosen = [SOURCES[name] for name in (names or SOURCES)]
    return [crop_slices(_from_cache(source, Path(cache_dir)), max_slices) for source in chosen]


def crop_slices(image: EvaluationImage, max_slices: int | None) -> EvaluationImage:
    """The central ``max_slices`` slices of ``image`` (the whole image when it has no more)."""
    if max_slices is not None and max_slices < 1:
        raise ValueError(f'Argument "max_slices" must be at least 1, got {max_slices}.')
    if max_slices is None or image.volume.shape[0] <= max_slices:
        return image
    start = (image.volume.shape[0] - max_slices) // 2
    provenance = {**image.provenance, "slices": f"{start}:{start + max_slices} of {image.volume.shape[0]}"}
    return replace(image, volume=image.volume[start : start + max_slices], provenance=provenance)


def _from_cache(source: _Source, cache_dir: Path) -> EvaluationImage:
    raw = source.load()
    series_dir = cache_dir / _CONVERSION / source.name
    if not any(series_dir.glob("*.dcm")):
        datasets = mr_series_datasets(
            raw.volume,
            series_description=f"qcgate evaluation {source.name}",
            patient_id="QCGATE^EVALUATION",
            orientation=raw.orientation,
            spacing_mm=raw.spacing_mm,
            phase_encoding="COL" if raw.phase_encode_axis == -2 else "ROW",
            uid_seed=f"{_UID_SEED} {source.name}",
            study_datetime=_STUDY_DATETIME,
        )
        write_series(datasets, series_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack = build_stacks([pydicom.dcmread(path) for path in sorted(series_dir.glob("*.dcm"))])[0]
    provenance = {
        "kind": EVALUATION_KIND,
        "name": source.name,
        "package": source.package,
        "origin": raw.origin,
        "notes": list(raw.notes),
    }
    return EvaluationImage(
        name=source.name,
        anatomy=source.anatomy,
        volume=stack.voxels,
        spacing_mm=stack.spacing_mm,
        phase_encode_axis=raw.phase_encode_axis,
        orientation=raw.orientation,
        series_dir=series_dir,
        provenance=provenance,
        acquired_share=raw.acquired_share,
    )
