"""Measure how fast clean synthetic images are made on this machine, one process (one core).

``python -m qcgate.models.synthesis.speed [--repeats 5] [--images 8]``

Training generates its data on the fly, so the generator must outrun the network on the CPU cores
there are (two here). Each case is timed ``repeats`` times over ``images`` consecutive seeds; the
table gives the median rate. The MNI template is loaded before timing starts, as a training worker
loads it once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from qcgate.models.synthesis.config import SOURCES, SynthesisConfig
from qcgate.models.synthesis.mni import mni_maps
from qcgate.models.synthesis.synthesize import SyntheticImage, synthesize_slice, synthesize_volume


@dataclass(frozen=True)
class Case:
    """One thing to time: a name and a function from seed to image."""

    name: str
    make: Callable[[int], SyntheticImage]


def cases() -> list[Case]:
    """2D slices at 256 x 256 per source and with the training defaults; 3D volumes of two sizes."""
    square = SynthesisConfig(matrix=(256, 256), phase_fov=(1.0, 1.0))
    found = [
        Case(f"slice 256x256, {source}", _slice(replace(square, source_weights=((source, 1.0),))))
        for source in SOURCES
    ]
    found.append(Case("slice 256x256, all sources", _slice(square)))
    found.append(Case("slice, default config (matrix 128-512)", _slice(SynthesisConfig())))
    for shape in ((64, 64, 64), (64, 128, 128)):
        found.append(Case(f"volume {'x'.join(map(str, shape))}, all sources", _volume(shape)))
    return found


def _slice(config: SynthesisConfig) -> Callable[[int], SyntheticImage]:
    return lambda seed: synthesize_slice(seed, config)


def _volume(shape: tuple[int, int, int]) -> Callable[[int], SyntheticImage]:
    return lambda seed: synthesize_volume(seed, shape=shape)


def measure(case: Case, repeats: int, images: int) -> tuple[float, float, float]:
    """Median images per wall-clock second and per CPU second over ``repeats`` runs, and mean voxels.

    CPU time is what one core spends; on a shared machine it is the steadier of the two.
    """
    wall, cpu, voxels = [], [], []
    for repeat in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for seed in range(repeat * images, (repeat + 1) * images):
            voxels.append(case.make(seed).magnitude.size)
        wall.append(images / (time.perf_counter() - start_wall))
        cpu.append(images / (time.process_time() - start_cpu))
    return statistics.median(wall), statistics.median(cpu), statistics.fmean(voxels)


def _report(line: str) -> None:
    """A line for the person running the benchmark, shown at once (it runs for a minute or two)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=8)
    arguments = parser.parse_args()

    _report("loading the MNI template (once per process) ...")
    start = time.perf_counter()
    mni_maps()
    _report(f"  {time.perf_counter() - start:.1f} s")
    load = os.getloadavg()[0]  # other work on the machine slows the wall-clock rate
    rows = []
    for case in cases():
        _report(f"timing {case.name} ...")
        wall, cpu, voxels = measure(case, arguments.repeats, arguments.images)
        rows.append(f"| {case.name} | {wall:.1f} | {cpu:.1f} | {1000 / cpu:.0f} | {voxels / 1e3:.0f}k |")
    _report(f"\nload average before timing: {load:.1f} on {os.cpu_count()} cores")
    _report("| case | images/s (wall) | images/s per CPU second | CPU ms/image | mean voxels |")
    _report("|---|---|---|---|---|")
    _report("\n".join(rows))


if __name__ == "__main__":
    main()
