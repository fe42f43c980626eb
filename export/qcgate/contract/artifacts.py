"""No-reference artifact features of one MR stack, invariant to how the stack was stored.

Each feature is a pure function of one 2D slice, oriented so that **higher is worse**, and is
invariant to what a benign re-storing changes:

* **intensity scale and bit depth**: every intensity is divided by ``S``, the median of the
  foreground (pixels above a tenth of the 99.5th percentile, holes filled);
* **flips and transposition**: features are symmetric in the two in-plane axes, or computed along
  both (the phase-encode axis is unknown) and the worse of the two is kept;
* **padding, cropping and zero-filled air**: border rows and columns holding one constant value
  (zero padding) are removed first; air is used only where it holds noise (``air_usable``), and
  otherwise the air features take their clean value and the anatomy alone is judged (noise from
  the Laplacian inside the tissue, resolution from edges and the spectrum).

A stack's value of a feature is the median over its assessed slices (at most ``max_slices``,
evenly spread over the slices with enough anatomy); the per-slice values are kept so the slices
where an artifact is worst can be named. numpy and scipy only: this module is part of the
torch-free model contract.

Features (``FEATURE_NAMES``; all higher is worse):

=================  ==========================================================================
``noise``          log of Immerkaer's noise sigma in the eroded foreground over ``S``
``blur``           log of the ratio of edge gradients at smoothing 3 px and 0.7 px (edge width)
``hf_loss``        minus the log ratio of outer (75-95 %) to middle (35-55 %) k-space power,
                   the worse axis: energy the matrix promises but the image lacks
``spectral_cliff`` the largest drop of the line-power profile over 4 % of kmax in outer k-space,
                   the worse axis (a sharp truncation: Gibbs ringing, partial matrices)
``line_dropout``   fraction of outer k-space lines far below their neighbours (1D undersampling)
``point_dropout``  excess fraction of outer k-space samples far below their neighbourhood (2D
                   undersampling)
``spike``          log of the largest outer 3x3 k-space power over its 9x9 ring, over what
                   white noise reaches (herringbone stripes)
``bias``           std of a quadratic fitted to smoothed log intensity in the tissue (bias field)
``edge_wrap``      foreground fraction of the emptier of two opposite FOV edges, worse axis
``wrap_seam``      correlation of the detail along the two opposite FOV edges where both hold
                   anatomy, worse axis: a folded (wrapped) field of view is periodic, so each
                   edge continues the other
``pe_anisotropy``  abs log ratio of the gradient energies along the two axes in the tissue
``ghost_overlap``  correlation of the tissue's fine detail with itself half the FOV away, worse
                   axis (a Nyquist ghost laid over the anatomy: seen without any air)
``bg_corr``        autocorrelation of the air at a lag of N/64 (>= 3) px, worse axis
``bg_ghost``       air signal where the object shifted by half the FOV lands minus elsewhere,
                   over ``S``, worse axis (Nyquist ghost)
``bg_tail``        log of the air's 99th over 50th percentile, above a Rayleigh's (2.58)
``bg_streak``      air signal in the object's shadow along an axis (beside it along the other)
                   minus the rest of the near air, over ``S``, worse axis (motion replicas and
                   ghosts are smeared along the phase-encode axis only)
=================  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from qcgate.contract.preprocess import content_box

__all__ = [
    "AIR_FEATURES",
    "FEATURE_NAMES",
    "IMMERKAER_SCALE",
    "ArtifactFeatures",
    "PreparedSlice",
    "artifact_features",
    "feature_vector",
    "laplacian_response",
    "prepare_slice",
    "slice_features",
]

FEATURE_NAMES: tuple[str, ...] = (
    "noise",
    "blur",
    "hf_loss",
    "spectral_cliff",
    "line_dropout",
    "point_dropout",
    "spike",
    "bias",
    "edge_wrap",
    "wrap_seam",
    "pe_anisotropy",
    "ghost_overlap",
    "bg_corr",
    "bg_ghost",
    "bg_tail",
    "bg_streak",
)
AIR_FEATURES: tuple[str, ...] = ("bg_corr", "bg_ghost", "bg_tail", "bg_streak")
_CLEAN_AIR = {"bg_corr": 0.0, "bg_ghost": 0.0, "bg_tail": 0.0, "bg_streak": 0.0}  # noise-only air
_MIN_SIDE = 16
_RAYLEIGH_P99_P50 = math.log(math.sqrt(2 * math.log(100)) / math.sqrt(2 * math.log(2)))
_LAPLACIAN = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
IMMERKAER_SCALE = 0.6745 * 6.0  # median |N * white noise| over its sigma


@dataclass(frozen=True)
class ArtifactFeatures:
    """A stack's features (``values``) and, per assessed slice, the same features (``per_slice``)."""

    values: dict[str, float]
    per_slice: dict[str, np.ndarray]  # name -> (n,) over ``slices``
    slices: np.ndarray  # (n,) indices into the stack's first axis
    air_usable: float  # fraction of assessed slices whose air holds noise
    notes: tuple[str, ...] = field(default_factory=tuple)
    air_per_slice: np.ndarray | None = None  # (n,) 1.0 where that slice's air holds noise, else 0.0


def artifact_features(stack: np.ndarray, max_slices: int = 8) -> ArtifactFeatures | None:
    """The features of a 2D ``(R, C)`` or 3D ``(S, R, C)`` magnitude stack; ``None`` if no slice
    holds assessable anatomy (blank, constant or smaller than 16 px).

    The air features of the stack are the median over the slices whose air holds noise; where no
    slice's does (``air_usable == 0``) they keep the placeholder 0 and a model should substitute
    what clean air gives (:class:`qcgate.contract.verdict_model.VerdictModel` does)."""
    volume = np.asarray(stack)
    if volume.ndim == 2:
        volume = volume[None]
    if volume.ndim != 3:
        raise ValueError(f'Argument "stack" must be 2D or 3D, got shape {volume.shape}.')
    candidates = _slices_with_anatomy(volume)
    if candidates.size > max_slices:
        candidates = candidates[np.round(np.linspace(0, candidates.size - 1, max_slices)).astype(int)]
    rows, kept = [], []
    for index in candidates:
        row = slice_features(volume[index])
        if row is not None:
            rows.append(row)
            kept.append(int(index))
    if not rows:
        return None
    per_slice = {name: np.array([row[name] for row in rows]) for name in (*FEATURE_NAMES, "air_usable")}
    usable = per_slice.pop("air_usable")
    values = {name: float(np.median(per_slice[name])) for name in FEATURE_NAMES}
    if usable.any():
        values.update({name: float(np.median(per_slice[name][usable > 0])) for name in AIR_FEATURES})
    return ArtifactFeatures(values, per_slice, np.array(kept), float(usable.mean()), air_per_slice=usable)


@dataclass(frozen=True)
class PreparedSlice:
    """One 2D slice as every feature sees it: constant borders stripped, divided by ``level``."""

    y: np.ndarray  # the stripped slice over ``level`` (float32)
    foreground: np.ndarray  # bool, holes filled
    core: np.ndarray  # bool, the foreground eroded by 2 px (or the foreground, if that is too thin)
    level: float  # ``S``: the median of the foreground, the unit of every intensity feature


def prepare_slice(image: np.ndarray) -> PreparedSlice | None:
    """``image`` prepared as :func:`slice_features` prepares it, or ``None`` if not assessable.

    Public so that a study of one estimator (``qcgate.bench.noise_reading``) starts from exactly the
    pixels, masks and unit the shipped features start from."""
    x = _strip_constant_border(np.asarray(image, dtype=np.float32))
    if x is None:
        return None
    foreground = _foreground(x)
    if foreground.sum() < 64:
        return None
    level = float(np.median(x[foreground]))
    if not level > 0:
        return None
    core = ndimage.binary_erosion(foreground, iterations=2)
    if core.sum() < 32:
        core = foreground
    return PreparedSlice(x / level, foreground, core, level)


def slice_features(image: np.ndarray) -> dict[str, float] | None:
    """The features of one 2D slice (plus ``air_usable``, 0 or 1), or ``None`` if not assessable."""
    prepared = prepare_slice(image)
    if prepared is None:
        return None
    y, foreground, core = prepared.y, prepared.foreground, prepared.core
    edges = ndimage.binary_dilation(foreground, iterations=3)
    air = _usable_air(y, foreground)
    spectrum = _power_spectrum(y, core)
    features = {
        "noise": _noise(y, core),
        "blur": _blur(y, edges),
        **_spectral(spectrum),
        "spike": _spike(spectrum),
        "bias": _bias(y, core),
        "edge_wrap": _edge_wrap(foreground),
        "wrap_seam": _wrap_seam(y, foreground),
        "pe_anisotropy": _pe_anisotropy(y, core),
        "ghost_overlap": _ghost_overlap(y, core),
        **(_air_features(y, foreground, air) if air is not None else _CLEAN_AIR),
        "air_usable": float(air is not None),
    }
    return features


# ---- preparation ---------------------------------------------------------------------------


def _slices_with_anatomy(volume: np.ndarray) -> np.ndarray:
    """Indices of slices whose foreground (against the stack's own threshold) is at least a
    quarter of the fullest slice's, so slices grazing the anatomy do not set the verdict."""
    step = max(1, max(volume.shape[1:]) // 64)
    thumbs = np.abs(volume[:, ::step, ::step]).astype(np.float32)
    top = float(np.percentile(thumbs[:: max(1, len(thumbs) // 16)], 99.5))  # 16 slices set the level
    if not top > 0:
        return np.zeros(0, dtype=int)
    counts = (thumbs > 0.1 * top).reshape(len(volume), -1).sum(axis=1)
    return np.flatnonzero(counts >= max(4, 0.25 * counts.max()))


def _strip_constant_border(x: np.ndarray) -> np.ndarray | None:
    """``x`` without border rows and columns that hold a single value (zero or constant padding)."""
    if not np.isfinite(x).all():
        x = np.nan_to_num(x)
    pad_value = x.min()
    box = content_box(x)
    if box is None:
        return None
    x = x[box]
    if min(x.shape) < _MIN_SIDE:
        return None
    return x - pad_value if pad_value < 0 else x


def _foreground(x: np.ndarray) -> np.ndarray:
    """Pixels above a tenth of the 99.5th percentile, holes filled, specks under 0.1 % removed."""
    top = np.percentile(x, 99.5)
    mask = x > 0.1 * top
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        mask = np.isin(labels, 1 + np.flatnonzero(sizes >= max(16, 0.001 * mask.size)))
    return ndimage.binary_fill_holes(mask)


def _usable_air(y: np.ndarray, foreground: np.ndarray) -> np.ndarray | None:
    """The air mask (outside the dilated foreground) if it is large enough and holds noise, not a
    constant (zero-filled, skull-stripped or quantised to nothing)."""
    margin = max(2, min(y.shape) // 64)
    air = ~ndimage.binary_dilation(foreground, iterations=margin)
    if air.sum() < max(256, 0.05 * air.size):
        return None
    values = y[air]
    median = np.median(values)
    if not median > 0 or np.mean(values == values.min()) > 0.2:
        return None
    return air


def _power_spectrum(y: np.ndarray, core: np.ndarray) -> np.ndarray:
    """|F|^2 of the tissue (mean-free, tapered by the eroded foreground smoothed over 2 px), unitary,
    DC centred: the air is left out, so noisy, zero-filled and cropped air give one spectrum (what
    lives in the air is judged by the air features)."""
    window = ndimage.gaussian_filter(core.astype(np.float32), 2.0)
    window *= _border_taper(y.shape[0])[:, None] * _border_taper(y.shape[1])[None, :]
    tissue = (y - float(y[core].mean())) * window
    spectrum = np.fft.fftshift(np.fft.fft2(tissue, norm="ortho"))
    return spectrum.real**2 + spectrum.imag**2


def _border_taper(n: int, width: float = 6.0) -> np.ndarray:
    """1 inside, falling linearly to 0 over ``width`` px at both ends (symmetric under a flip): a
    stack cropped to the anatomy then has no wrap-around discontinuity in its spectrum, and air
    (where the window is 0 anyway) is unaffected."""
    i = np.arange(n, dtype=np.float32)
    return np.clip((np.minimum(i, n - 1 - i) + 0.5) / width, 0.0, 1.0)


def _radius(shape: tuple[int, ...]) -> np.ndarray:
    """Normalised k-space radius, 1 at the middle of each edge (max-norm, so both axes count)."""
    kr = np.abs(np.arange(shape[0]) - shape[0] // 2) / (shape[0] / 2)
    kc = np.abs(np.arange(shape[1]) - shape[1] // 2) / (shape[1] / 2)
    return np.maximum(kr[:, None], kc[None, :])


# ---- features --------------------------------------------------------------------------------


def _noise(y: np.ndarray, core: np.ndarray) -> float:
    """log(sigma / S), sigma by Immerkaer's Laplacian estimator (1996) inside the tissue.

    The 3x3 Laplacian difference ``N`` cancels smooth anatomy and multiplies white noise by
    ``||N|| = 6``; the median of ``|N * y|`` over the eroded foreground is ``0.6745 * 6 sigma`` for
    Gaussian noise (robust to the edges that remain). Judged from the anatomy, so it needs no air.
    Higher is worse.
    """
    sigma = float(np.median(laplacian_response(y)[core])) / IMMERKAER_SCALE
    return math.log(max(sigma, 1e-5))


def laplacian_response(y: np.ndarray) -> np.ndarray:
    """``|N * y|``, the 3x3 Laplacian difference of Immerkaer (1996): its median over a region,
    over :data:`IMMERKAER_SCALE`, is that region's noise sigma where the anatomy is smooth."""
    return np.abs(ndimage.convolve(y, _LAPLACIAN, mode="reflect"))


def _blur(y: np.ndarray, region: np.ndarray) -> float:
    """log(G3 / G0.7): the 99th percentile of the gradient magnitude in ``region`` (the anatomy
    dilated by 3 px) after Gaussian smoothing of 3 px over that after 0.7 px.

    For an edge of width ``w`` (Gaussian sigma, px) the peak gradient falls as
    ``1/sqrt(w^2 + s^2)``, so a sharp edge gives about log(0.24) and an edge blurred by 3 px about
    log(0.72). Scale-free and rotation-invariant. Higher is worse (wider edges).
    """
    fine = _gradient_magnitude(ndimage.gaussian_filter(y, 0.7))[region]
    coarse = _gradient_magnitude(ndimage.gaussian_filter(y, 3.0))[region]
    return math.log(max(float(np.percentile(coarse, 99)), 1e-9) / max(float(np.percentile(fine, 99)), 1e-9))


def _gradient_magnitude(smooth: np.ndarray) -> np.ndarray:
    dr, dc = np.gradient(smooth)
    return np.hypot(dr, dc)


def _line_profiles(power: np.ndarray) -> list[np.ndarray]:
    """Mean power per k-space line along each axis, folded over +-k: index 0 is DC."""
    profiles = []
    for axis in (0, 1):
        line = power.mean(axis=1 - axis)
        n, centre = line.size, line.size // 2
        half = n - centre
        folded = np.empty(half)
        for k in range(half):
            left = centre - k
            folded[k] = 0.5 * (line[centre + k] + line[left]) if left >= 0 else line[centre + k]
        profiles.append(folded)
    return profiles


def _spectral(power: np.ndarray) -> dict[str, float]:
    """``hf_loss``, ``spectral_cliff``, ``line_dropout`` and ``point_dropout`` (higher is worse).

    * ``hf_loss = -min_axis log(mean P[0.75-0.95 kmax] / mean P[0.35-0.55 kmax])``: outer k-space
      power relative to middle; noise keeps it near 0, blur, truncation and undersampling raise it.
    * ``spectral_cliff = max_axis max_k (log p(k-l) - log p(k+l))``, ``l`` 2 % of kmax (>= 2
      lines), over the 25-95 % band of the line-power profile ``p`` (floored at 1e-6 of its mean):
      a sharp cut of the matrix. The tissue window is tapered at the FOV edge (``_border_taper``),
      so anatomy cropped at the edge adds no cut of its own.
    * ``line_dropout``: fraction of lines beyond 25 % of kmax (not folded: +k and -k are acquired
      separately) whose power is under 5 % of the largest of their 8 neighbours (lines never
      acquired), the worse axis.
    * ``point_dropout``: fraction of samples beyond 20 % of kmax (max-norm) below 1 % of their 5x5
      neighbourhood mean, minus the 1 % that exponential (noise) power puts there.
    """
    hf, cliffs, drops = [], [], []
    for profile in _line_profiles(power):
        n = profile.size
        floor = 1e-6 * profile.mean() + 1e-30
        log_p = np.log(profile + floor)
        k = np.arange(n) / n
        outer = log_p[(k >= 0.75) & (k <= 0.95)]
        middle = log_p[(k >= 0.35) & (k <= 0.55)]
        if outer.size and middle.size:
            hf.append(float(np.log(np.mean(np.exp(outer))) - np.log(np.mean(np.exp(middle)))))
        smooth = np.convolve(log_p, np.ones(3) / 3, mode="same")
        band = np.flatnonzero((k >= 0.25) & (k <= 0.95))
        lag = max(2, int(round(0.02 * n)))  # a fixed share of kmax, so cropping changes nothing
        band = band[(band >= lag + 1) & (band < n - lag - 1)]
        if band.size:
            cliffs.append(float(np.max(smooth[band - lag] - smooth[band + lag])))
    for axis in (0, 1):
        line = power.mean(axis=1 - axis)  # unfolded: +k and -k are sampled independently
        k = np.abs(np.arange(line.size) - line.size // 2) / (line.size / 2)
        neighbours = ndimage.maximum_filter(line, size=9, mode="nearest")
        outer_lines = k >= 0.25
        if outer_lines.any():
            drops.append(float(np.mean(line[outer_lines] < 0.05 * neighbours[outer_lines])))
    local = ndimage.uniform_filter(power, size=5, mode="wrap")
    outer_points = (_radius(power.shape) > 0.2) & (local > 0)
    point = (
        float(np.mean(power[outer_points] < 0.01 * local[outer_points])) - 0.01 if outer_points.any() else 0.0
    )
    return {
        "hf_loss": -min(hf) if hf else 0.0,
        "spectral_cliff": max(cliffs) if cliffs else 0.0,
        "line_dropout": max(drops) if drops else 0.0,
        "point_dropout": point,
    }


def _spike(power: np.ndarray) -> float:
    """log(max P3 / ring) - log(ln n) beyond 10 % of kmax: P3 the power of a 3x3 block, ring the
    mean power of the 9x9 ring around it (times 9); a k-space spike (spread over a few samples by
    the tissue window) stands far above its ring, while the largest of ``n`` noise blocks stays
    within a few times it. Higher is worse."""
    ring = (
        81.0 * ndimage.uniform_filter(power, size=9, mode="wrap")
        - 9.0 * ndimage.uniform_filter(power, size=3, mode="wrap")
    ) / 72.0
    peak = 9.0 * ndimage.uniform_filter(power, size=3, mode="wrap")  # the tissue window spreads a spike
    outer = (_radius(power.shape) > 0.1) & (ring > 0)
    if not outer.any():
        return 0.0
    ratio = peak[outer] / (9.0 * ring[outer] + 1e-30)
    return float(np.log(max(ratio.max(), 1e-9)) - np.log(np.log(outer.sum())))


def _bias(y: np.ndarray, core: np.ndarray) -> float:
    """Std over the tissue of a quadratic in (row, column) fitted to log intensity.

    The intensity is box-averaged onto a symmetric grid of at most 64x64 points, then averaged over
    the tissue with a Gaussian of 1/16 of the side (normalised convolution, so the air does not
    leak in); the quadratic is fitted at the grid points inside the eroded foreground and is closed
    under flips and transposition. A smooth multiplicative field (coil sensitivity, B1) shows as a
    large low-order trend. Higher is worse.
    """
    step = max(1, max(y.shape) // 64)
    box = 2 * (step // 2) + 1  # odd, so the average is centred and a flip gives the same grid values
    rows = np.unique(np.round(np.linspace(0, y.shape[0] - 1, min(64, y.shape[0]))).astype(int))
    cols = np.unique(np.round(np.linspace(0, y.shape[1] - 1, min(64, y.shape[1]))).astype(int))
    grid = np.ix_(rows, cols)
    inside = core.astype(np.float32)
    mass = ndimage.uniform_filter(inside, box)[grid]
    signal = ndimage.uniform_filter(np.where(core, y, 0).astype(np.float32), box)[grid]
    sigma = max(1.0, max(y.shape) / 16) * min(rows.size / y.shape[0], cols.size / y.shape[1])
    weight = ndimage.gaussian_filter(mass, sigma)
    local = ndimage.gaussian_filter(signal, sigma)
    keep = core[grid] & (weight > 0.5) & (local > 0)
    if keep.sum() < 8:
        return 0.0
    r, c = np.nonzero(keep)
    r = rows[r] / max(y.shape[0] - 1, 1) - 0.5
    c = cols[c] / max(y.shape[1] - 1, 1) - 0.5
    design = np.stack([np.ones_like(r), r, c, r * r, c * c, r * c], axis=1)
    target = np.log(local[keep] / weight[keep])
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(np.std(design @ coefficients))


def _edge_wrap(foreground: np.ndarray) -> float:
    """max over axes of min(foreground fraction of the first band, of the last band), bands of
    1 % of the side (>= 1 px). Anatomy cut broadly at both ends of an axis is what a folded-over
    (wrapped) field of view shows; a stack cropped to the anatomy touches its edges only at the
    anatomy's extremes, which the thin band keeps small. Higher is worse."""
    worst = 0.0
    for axis in (0, 1):
        n = foreground.shape[axis]
        band = max(1, int(round(0.01 * n)))
        first = np.take(foreground, np.arange(band), axis=axis).mean()
        last = np.take(foreground, np.arange(n - band, n), axis=axis).mean()
        worst = max(worst, float(min(first, last)))
    return worst


def _wrap_seam(y: np.ndarray, foreground: np.ndarray) -> float:
    """max over axes of the Pearson correlation between the detail (first differences) along the
    first and along the last band (1 % of the side, >= 1 px) of the field of view, over the
    positions where both bands hold anatomy, times the share of the band they make up.

    A phase-encode field of view smaller than the object folds it over: the image is periodic, so
    the anatomy leaving the last row comes back in the first, and the two edges continue one
    another (0.1-0.6 on severely wrapped synthetic slices). A field of view cropped to the
    anatomy, or one the anatomy fills, has two unrelated parts of the object at its ends (0 in
    most clean synthetic slices, under 0.1 in nine of ten). Symmetric under flips and
    transposition. Higher is worse.
    """
    worst = 0.0
    for axis in (0, 1):
        z, inside = np.moveaxis(y, axis, 0), np.moveaxis(foreground, axis, 0)
        band = max(1, int(round(0.01 * z.shape[0])))
        first, last = np.diff(z[:band].mean(axis=0)), np.diff(z[-band:].mean(axis=0))
        both = inside[:band].all(axis=0) & inside[-band:].all(axis=0)
        both = both[1:] & both[:-1]  # type: ignore[index]  # (n - 1,): both differences in the anatomy
        if both.sum() < 8:
            continue
        a, b = first[both] - first[both].mean(), last[both] - last[both].mean()
        denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
        if denominator > 0:
            worst = max(worst, float((a * b).sum()) / denominator * float(both.mean()))
    return worst


def _pe_anisotropy(y: np.ndarray, core: np.ndarray) -> float:
    """|log(E[(d_r y)^2] / E[(d_c y)^2])| inside the tissue: motion and ghosts streak along the
    phase-encode axis only, anatomy is about isotropic. Symmetric under transposition. Higher is
    worse."""
    dr = np.diff(y, axis=0)[:, :-1] ** 2
    dc = np.diff(y, axis=1)[:-1, :] ** 2
    inside = core[:-1, :-1]
    er, ec = float(dr[inside].mean()), float(dc[inside].mean())
    return abs(math.log(max(er, 1e-12) / max(ec, 1e-12)))


def _ghost_overlap(y: np.ndarray, core: np.ndarray) -> float:
    """max over axes and both directions of the Pearson correlation, over tissue that meets tissue,
    between the fine detail ``y - G2 * y`` and the same shifted by half the FOV.

    A Nyquist (N/2) ghost adds a half-FOV-shifted copy of the object: its edges line up with the
    anatomy's own at that shift, where anatomy alone correlates about 0 (0.00-0.05 on clean
    synthetic slices, 0.3-0.7 for a severe ghost). Judged inside the tissue, so zero-filled air
    does not hide it (a crop that changes the FOV does). Higher is worse.
    """
    detail = y - ndimage.gaussian_filter(y, 2.0)
    best = 0.0
    for axis in (0, 1):
        n = y.shape[axis]
        for shift in (n // 2, -(n // 2)):  # both, so a flip gives the same answer for odd n
            both = core & np.roll(core, shift, axis=axis)
            if both.sum() <= 64:
                continue
            a = detail[both] - detail[both].mean()
            b = np.roll(detail, shift, axis=axis)[both]
            b = b - b.mean()
            denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
            if denominator > 0:
                best = max(best, float((a * b).sum()) / denominator)
    return best


def _air_features(y: np.ndarray, foreground: np.ndarray, air: np.ndarray) -> dict[str, float]:
    """``bg_corr``, ``bg_ghost`` and ``bg_tail`` from the air (Mortamet's QI1 spirit: artifacts
    put structured signal where only noise should be). Higher is worse.

    * ``bg_corr``: Pearson correlation of air pixels with air pixels ``lag = max(3, N/64)`` away,
      the larger of the two axes (white noise of any coil count gives 0; ghosts are smooth).
    * ``bg_ghost``: over both axes the largest ``mean(air in F shifted N/2) - mean(other air)``,
      in units of ``S``.
    * ``bg_tail``: ``max(0, log(p99 / p50) - log(2.58))`` of the air; 2.58 is a Rayleigh's ratio.
    """
    values = y[air]
    p50, p99 = np.percentile(values, [50, 99])
    tail = max(0.0, math.log(max(p99, 1e-12) / max(p50, 1e-12)) - _RAYLEIGH_P99_P50)
    corr, ghost = 0.0, 0.0
    for axis in (0, 1):
        n = y.shape[axis]
        lag = max(3, n // 64)
        a = np.take(y, np.arange(n - lag), axis=axis)
        b = np.take(y, np.arange(lag, n), axis=axis)
        both = np.take(air, np.arange(n - lag), axis=axis) & np.take(air, np.arange(lag, n), axis=axis)
        if both.sum() > 64:
            av, bv = a[both] - a[both].mean(), b[both] - b[both].mean()
            denominator = math.sqrt(float((av * av).sum() * (bv * bv).sum()))
            if denominator > 0:
                corr = max(corr, float((av * bv).sum()) / denominator)
        for shift in (n // 2, -(n // 2)):  # both, so a flip gives the same answer for odd n
            shifted = np.roll(foreground, shift, axis=axis) & air
            rest = air & ~shifted
            if shifted.sum() > 32 and rest.sum() > 32:
                ghost = max(ghost, float(y[shifted].mean() - y[rest].mean()))
    return {"bg_corr": corr, "bg_ghost": ghost, "bg_tail": tail, "bg_streak": _bg_streak(y, foreground, air)}


def _bg_streak(y: np.ndarray, foreground: np.ndarray, air: np.ndarray) -> float:
    """max over axes of ``mean(shadow) - mean(beside)`` over ``S``, in the air within about a
    twelfth of the side of the object: ``shadow`` the air in line with the object along the axis
    (rows or columns the object spans), ``beside`` the rest of that near air.

    A rigid movement during phase encoding repeats the object's edges along the phase-encode axis
    only, so its replicas brighten the air in line with the object and not the air beside it;
    noise (of any coil count) is the same in both. Zero when either region is too small (an
    object filling the field of view). Higher is worse.
    """
    near = air & ndimage.binary_dilation(foreground, iterations=max(24, min(y.shape) // 12))
    worst = 0.0
    for axis in (0, 1):
        shadow = np.expand_dims(foreground.any(axis=axis), axis) & near
        beside = near & ~shadow
        if shadow.sum() > 32 and beside.sum() > 32:
            worst = max(worst, float(y[shadow].mean() - y[beside].mean()))
    return worst


def feature_vector(values: Mapping[str, float]) -> np.ndarray:
    """The features in :data:`FEATURE_NAMES` order, as float64."""
    return np.array([float(values[name]) for name in FEATURE_NAMES])
