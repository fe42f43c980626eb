"""How well a candidate motion feature, ``echo``, tells severe corruption from clean synthetic slices.

Why this exists: the verdict rarely names rigid motion (on the real evaluation images a translated
copy is flagged on about half the severe copies, the demo phantom moved at severity 0.9 not at all;
docs/verdict.md). A jump of the object during phase encoding leaves the k-space lines acquired
after it holding the shifted object, so the magnitude image carries a replica of every edge one
jump away. :func:`echo_rise` measures that replica; on 2026-12-05 it was built into the artifact
features and the verdict refitted twice (docs/training.md, candidates G and H); neither refit met
the rule written before it, so the feature is not in the shipped model and lives here, where the
next try starts from a number.

Per kind of corruption (severity 0.6-1, one copy per base) against the clean base, this reports the
AUC of ``echo`` and of the best shipped feature (:data:`qcgate.contract.artifacts.FEATURE_NAMES`,
each oriented higher-is-worse), and how far ``echo`` moves between two storings of one clean base
(:func:`qcgate.models.verdict.data.restore` with a forced crop, zero-filled air or skull strip).
The bases are the verdict's own (:func:`qcgate.models.verdict.data.make_base`) at seeds from
300 000, which no split of the verdict's data uses. No evaluation image is read.

Run: ``.venv/bin/python -m qcgate.bench.motion_echo [--images 50] [--jobs 2]`` (about 2 minutes
on 2 cores for 50 bases); ``bench/out/motion_echo.{json,png}``.
"""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from qcgate.bench.common import drawn_to, markdown_table, progress, publish, synthetic_parser
from qcgate.contract.artifacts import FEATURE_NAMES, prepare_slice, slice_features
from qcgate.models.corruption import corrupt
from qcgate.models.verdict.data import make_base, restore
from qcgate.models.verdict.evidence import auc

FIRST_SEED = 300_000
KINDS: tuple[str, ...] = (
    "motion_translation",
    "motion_rotation",
    "blur",
    "gibbs",
    "nyquist_ghost",
    "undersampling_1d",
    "undersampling_2d",
    "noise",
    "wrap_around",
    "spike",
    "bias_field",
)
MIN_LAG = 6.0  # px: nearer lags hold the detail's own correlation
MAX_LAG = 64  # px: keeps the padded transform of a 1024-pixel slice at about 0.2 s per axis
STEP = 2.0  # px towards lag 0 on the same ray: a replica rises from there, the main lobe falls


def echo_rise(y: np.ndarray, core: np.ndarray) -> float:
    """The most prominent secondary peak of the tissue's fine detail correlated with itself, worse axis.

    Per axis: the second derivative along it, inside the tissue eroded by 2 px (the air, and so how
    it was stored, does not count) and tapered linearly over 6 px at the field-of-view edge; its
    autocorrelation, normalised at lag 0; and over lags of 6 px to N/6 (at most 64 px) the largest
    rise of a lag over the value 2 px nearer lag 0 on the same ray. The detail's own correlation
    only falls outward, however wide blur makes it; a replica rises. Invariant to flips (an
    autocorrelation is point-symmetric) and, as the worse axis, to transposition. Higher is worse.
    """
    weight = ndimage.binary_erosion(core, iterations=2)
    if weight.sum() < 32:
        weight = core
    along_rows, along_cols = (
        np.clip((np.minimum(i, i[::-1]) + 0.5) / 6.0, 0.0, 1.0) for i in (np.arange(n) for n in y.shape)
    )
    weight = weight * along_rows[:, None] * along_cols[None, :]
    max_lag = min(MAX_LAG, max(8, min(y.shape) // 6))
    padded = (y.shape[0] + max_lag + 2, y.shape[1] + max_lag + 2)
    centre = (padded[0] // 2, padded[1] // 2)  # where fftshift puts lag 0
    lag_r, lag_c = np.meshgrid(
        np.arange(padded[0]) - centre[0], np.arange(padded[1]) - centre[1], indexing="ij"
    )
    radius = np.hypot(lag_r, lag_c)
    ring = (radius >= MIN_LAG) & (radius <= max_lag)
    inward = 1.0 - STEP / radius[ring]
    nearer = [centre[0] + lag_r[ring] * inward, centre[1] + lag_c[ring] * inward]
    worst = 0.0
    for axis in (0, 1):
        detail = np.gradient(np.gradient(y.astype(np.float64), axis=axis), axis=axis) * weight
        corr = np.fft.fftshift(np.fft.irfft2(np.abs(np.fft.rfft2(detail, s=padded)) ** 2, s=padded))
        if not corr[centre] > 0:
            continue
        corr /= corr[centre]
        rise = corr[ring] - np.maximum(ndimage.map_coordinates(corr, nearer, order=1), 0.0)
        worst = max(worst, float(rise.max()))
    return worst


def echo_of(image: np.ndarray) -> float | None:
    """:func:`echo_rise` of a 2D magnitude as the artifact features prepare it (``None``: not assessable)."""
    prepared = prepare_slice(np.abs(image))
    return None if prepared is None else echo_rise(prepared.y, prepared.core)


def _readings(image: np.ndarray) -> dict[str, float] | None:
    features, echo = slice_features(np.abs(image)), echo_of(image)
    if features is None or echo is None:
        return None
    return {**{name: features[name] for name in FEATURE_NAMES}, "echo": echo}


def base_readings(seed: int) -> dict[str, dict[str, float] | None]:
    """The readings of one base: clean, re-stored, and one copy per kind of :data:`KINDS`."""
    base, foreground = make_base(seed)
    rng = np.random.default_rng(seed)
    stored, _ = restore(np.abs(base), foreground, rng, strong=True)
    out = {"clean": _readings(base), "restored": _readings(stored)}
    for kind in KINDS:
        axis = int(rng.choice([-2, -1]))
        corrupted, _ = corrupt(base, kind, float(rng.uniform(0.6, 1.0)), rng, phase_encode_axis=axis)
        out[kind] = _readings(corrupted)
    return out


def measure(images: int, jobs: int) -> dict[str, Any]:
    """Per kind, the AUC of ``echo`` and of the best shipped feature (severe vs clean), and the
    change of ``echo`` between two storings of a clean base."""
    seeds = range(FIRST_SEED, FIRST_SEED + images)
    with Pool(jobs) as pool:
        bases = []
        for count, readings in enumerate(pool.imap(base_readings, seeds), 1):
            bases.append(readings)
            if count % 10 == 0 or count == images:
                progress(f"motion_echo: {count}/{images} bases")
    clean = [b["clean"] for b in bases if b["clean"] is not None]
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        severe = [b[kind] for b in bases if b[kind] is not None]
        by_feature = {
            name: auc([r[name] for r in severe], [r[name] for r in clean])
            for name in (*FEATURE_NAMES, "echo")
        }
        best = max(FEATURE_NAMES, key=lambda name: by_feature[name])
        kinds[kind] = {
            "echo_auc": round(by_feature["echo"], 3),
            "best_shipped_feature": best,
            "best_shipped_auc": round(by_feature[best], 3),
            "copies": len(severe),
        }
    pairs = [b for b in bases if b["clean"] is not None and b["restored"] is not None]
    change = np.array([abs(b["restored"]["echo"] - b["clean"]["echo"]) for b in pairs])
    clean_echo = np.array([r["echo"] for r in clean])
    return {
        "bases": images,
        "kinds": kinds,
        "clean_echo_median_p90": [round(float(v), 3) for v in np.percentile(clean_echo, [50, 90])],
        "restored_change_median_p90": [round(float(v), 4) for v in np.percentile(change, [50, 90])],
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [kind, k["echo_auc"], f"{k['best_shipped_auc']} ({k['best_shipped_feature']})", k["copies"]]
        for kind, k in result["kinds"].items()
    ]
    median, p90 = result["clean_echo_median_p90"]
    change_median, change_p90 = result["restored_change_median_p90"]
    return (
        f"AUC, severe (0.6-1) against clean, {result['bases']} synthetic bases\n\n"
        + markdown_table(["corruption", "echo", "best shipped feature", "copies"], rows)
        + f"\nclean echo median {median}, p90 {p90}; change between two storings of a clean base "
        f"median {change_median}, p90 {change_p90}\n"
    )


def plot(result: dict[str, Any], path: Path) -> None:
    kinds = list(result["kinds"])
    x = np.arange(len(kinds))
    with drawn_to(path, (8, 4)) as axes:
        axes.bar(x - 0.2, [result["kinds"][k]["echo_auc"] for k in kinds], 0.4, label="echo")
        axes.bar(
            x + 0.2,
            [result["kinds"][k]["best_shipped_auc"] for k in kinds],
            0.4,
            label="best shipped feature",
        )
        axes.axhline(0.5, color="grey", linewidth=0.8)
        axes.set_xticks(x, [k.replace("_", " ") for k in kinds], rotation=40, ha="right")
        axes.set_ylabel("AUC, severe vs clean")
        axes.set_ylim(0.0, 1.0)
        axes.legend()


def main(argv: list[str] | None = None) -> int:
    parser = synthetic_parser(__doc__.splitlines()[0], 50, "synthetic bases")
    args = parser.parse_args(argv)
    return publish("motion_echo", measure(args.images, args.jobs), plot, report)


if __name__ == "__main__":
    raise SystemExit(main())
