"""Baselines and drift of quality per (station, protocol): is a scanner slowly getting worse?

**Baseline.** Each (station, protocol, models) group's reference is the median and the MAD of the
quality of its *first* ``drift_baseline_series`` series, frozen from then on. A rolling baseline
would follow a slowly failing coil down and never see it; a frozen one is what a physicist compares
a QA phantom with. A new model moves every quality, so its series start a new group and a new
baseline (``models`` in :mod:`qcgate.store.trends`). The robust spread is ``1.4826 * MAD`` (the
standard deviation for normal data), never below :data:`MIN_SCALE` quality points, so a baseline of
identical values does not turn every small change into many deviations.

**Percentile.** A series' mid-rank among its group's baseline values (0-100): 50 is typical of the
baseline, 2 is worse than nearly all of it.

**Drift.** A one-sided (lower) CUSUM [Page1954]_ on the standardized quality of every series after
the baseline, ``z = (quality - median) / scale`` clipped to +-:data:`Z_CLIP`::

    S_0 = 0,   S_t = max(0, S_{t-1} - z_t - k)        drifting while S_t > h

``k`` (``drift_allowance``, default 0.5) is half the smallest shift worth finding (one standard
deviation); ``h`` (``drift_threshold``, default 8) sets the false alarms. With a 40-series baseline,
whose median and MAD are themselves estimates, simulated normal quality raises a false alarm in about
7 % of runs of 100 series, and a drop of 1.5 MAD (one standard deviation) is found after a median of
14 series (tests/test_trends.py measures both; docs/drift.md). Clipping bounds what one
series can add (``Z_CLIP - k`` = 2.5 < h), so a single bad series (a patient who moved) never alarms
alone; a lasting drop does. The statistic falls by at least ``k`` per typical series, so the alarm
clears when the quality returns.

.. [Page1954] Page ES, *Continuous inspection schemes*, Biometrika 41 (1954) 100-115.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from qcgate.core.settings import Settings
from qcgate.store.trends import QualityPoint

MAD_TO_SIGMA = 1.4826
MIN_SCALE = 1.0  # quality points
Z_CLIP = 3.0


@dataclass(frozen=True)
class Baseline:
    """The reference quality of one group: its first series' median and MAD."""

    values: tuple[float, ...]  # sorted

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def mad(self) -> float:
        centre = self.median
        return statistics.median(abs(value - centre) for value in self.values)

    @property
    def scale(self) -> float:
        """The robust standard deviation used to standardize quality."""
        return max(MAD_TO_SIGMA * self.mad, MIN_SCALE)

    def percentile(self, quality: float) -> float:
        """Mid-rank percentile of ``quality`` among the baseline values (0-100)."""
        below = bisect_left(self.values, quality)
        equal = bisect_right(self.values, quality) - below
        return 100.0 * (below + 0.5 * equal) / self.n

    def z(self, quality: float) -> float:
        """Standardized quality, clipped to +-Z_CLIP."""
        return max(-Z_CLIP, min(Z_CLIP, (quality - self.median) / self.scale))


def baseline_of(values: Iterable[float]) -> Baseline:
    ordered = tuple(sorted(values))
    if not ordered:
        raise ValueError('Argument "values" must hold at least one quality.')
    return Baseline(ordered)


def lower_cusum(z_values: Iterable[float], allowance: float) -> list[float]:
    """The lower CUSUM statistic after each standardized value (grows while values sit below 0)."""
    statistic, path = 0.0, []
    for z in z_values:
        statistic = max(0.0, statistic - z - allowance)
        path.append(statistic)
    return path


@dataclass
class GroupDrift:
    """One (station, protocol) under its current models: baseline, percentiles and the CUSUM."""

    station: str
    protocol: str
    models: str
    points: list[QualityPoint] = field(default_factory=list)
    baseline: Baseline | None = None
    percentiles: list[float | None] = field(default_factory=list)
    statistic: float = 0.0
    drifting: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "station": self.station,
            "protocol": self.protocol,
            "models": self.models,
            "n": len(self.points),
            "baseline_series": self.baseline.n if self.baseline else 0,
            "baseline_median": self.baseline.median if self.baseline else None,
            "baseline_mad": self.baseline.mad if self.baseline else None,
            "statistic": round(self.statistic, 4),
            "drifting": self.drifting,
            "last_time": self.points[-1].time.isoformat() if self.points else None,
        }


def analyse_group(group: GroupDrift, settings: Settings) -> GroupDrift:
    """Fill in the baseline, every point's percentile and the CUSUM of ``group.points`` (oldest first)."""
    size = settings.drift_baseline_series
    if len(group.points) < size:
        group.percentiles = [None] * len(group.points)
        return group
    baseline = baseline_of(point.quality for point in group.points[:size])
    group.baseline = baseline
    group.percentiles = [baseline.percentile(point.quality) for point in group.points]
    path = lower_cusum((baseline.z(p.quality) for p in group.points[size:]), settings.drift_allowance)
    group.statistic = path[-1] if path else 0.0
    group.drifting = group.statistic > settings.drift_threshold
    return group


def analyse(points: Sequence[QualityPoint], settings: Settings) -> list[GroupDrift]:
    """Every (station, protocol, models) group of ``points`` (oldest first), analysed; groups in
    order of first appearance."""
    groups: dict[tuple[str, str, str], GroupDrift] = {}
    for point in points:
        key = (point.station, point.protocol, point.models)
        groups.setdefault(key, GroupDrift(*key)).points.append(point)
    return [analyse_group(group, settings) for group in groups.values()]


def current_groups(groups: Sequence[GroupDrift]) -> list[GroupDrift]:
    """Per (station, protocol), the group of the models that scored its newest series: older
    models' groups are history, no longer monitored."""
    newest: dict[tuple[str, str], GroupDrift] = {}
    for group in groups:
        key = (group.station, group.protocol)
        held = newest.get(key)
        if held is None or (group.points[-1].time, group.points[-1].series_id) > (
            held.points[-1].time,
            held.points[-1].series_id,
        ):
            newest[key] = group
    return sorted(newest.values(), key=lambda g: (g.station, g.protocol))


def series_percentile(
    points: Sequence[QualityPoint], settings: Settings, series_instance_uid: str
) -> float | None:
    """One series' percentile against its group's baseline, from its station and protocol's history
    (``quality_history(session, station=..., protocol=...)``); None without a baseline or quality."""
    for group in analyse(points, settings):
        for point, percentile in zip(group.points, group.percentiles, strict=True):
            if point.series_instance_uid == series_instance_uid:
                return percentile
    return None
