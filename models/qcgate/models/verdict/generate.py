"""Generate and cache the verdict model's synthetic splits (train, validation, test) as JSON lines.

``python -m qcgate.models.verdict.generate --out models/runs/verdict [--jobs 2]``. Splits use
disjoint seed ranges (:data:`SPLITS`), so the held-out test split has anatomy, contrasts and
storings of its own. Each row is a :class:`~qcgate.models.verdict.data.Sample` as a dict.

The cache lives in ``OUT/data-<key>/`` where ``key`` hashes everything that decides a row: the
code (syntax tree without docstrings and comments) of every module that makes one (:mod:`.data`,
the artifact features, the corruption simulator, the synthesis), the splits, the copies per base
and the numpy and scipy versions. Changing any of them gives a new folder, so a stale cache is never read; an
interrupted run resumes where it stopped, and rows are sorted on loading, so the order in which
the workers finished does not matter.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import scipy

from qcgate.models.code_key import hash_code
from qcgate.models.evaluation_guard import EvaluationDataLeak
from qcgate.models.verdict.data import samples_for_base
from qcgate.models.verdict.learned_inputs import learned_identity

__all__ = ["COPIES", "SPLITS", "data_dir", "data_key", "folder_key", "generate", "load_split"]

SPLITS: dict[str, range] = {
    "train": range(0, 1500),
    "validation": range(100_000, 100_450),
    "test": range(200_000, 200_150),
}
COPIES = 6
_SOURCES = (  # modules and packages whose code decides a row
    "qcgate.contract.artifacts",
    "qcgate.models.verdict.data",
    "qcgate.models.corruption",
    "qcgate.models.synthesis",
    "qcgate.models.evaluation_guard",
    "qcgate.models.verdict.learned_inputs",
    "qcgate.contract.preprocess",
)


def data_key(splits: dict[str, range] = SPLITS, copies: int = COPIES) -> str:
    """sha256 over the generating sources, the splits, the copies and the numeric libraries."""
    digest = hashlib.sha256()
    hash_code(digest, _SOURCES)
    config = {
        "splits": {k: [v.start, v.stop] for k, v in splits.items()},
        "copies": copies,
        "learned": learned_identity(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    digest.update(json.dumps(config, sort_keys=True).encode())
    return digest.hexdigest()


def data_dir(out: Path, splits: dict[str, range] = SPLITS, copies: int = COPIES) -> Path:
    """The cache folder of the rows the code as it is now makes."""
    return _folder(out, data_key(splits, copies))


def _folder(out: Path, key: str) -> Path:
    return out / f"data-{key[:16]}"


def _rows(job: tuple[int, int]) -> list[dict]:
    """The rows of one base; none when the leak guard refuses it (a synthetic slice too like an
    evaluation slice: the guard errs on the side of refusing, and a refused base is simply left out,
    as the networks' loaders leave out refused samples)."""
    seed, copies = job
    try:
        return [dataclasses.asdict(sample) for sample in samples_for_base(seed, copies)]
    except EvaluationDataLeak as refused:
        sys.stderr.write(f"base {seed} left out: {refused}\n")
        return []


def generate(
    out: Path, jobs: int, splits: dict[str, range] = SPLITS, copies: int = COPIES, log: bool = True
) -> Path:
    """Fill the cache folder for ``splits`` (resuming) and return it. Its ``key.json`` holds the key
    of the code the rows were made with, worked out before the first row: code edited while the
    rows are made must not relabel them."""
    key = data_key(splits, copies)
    folder = _folder(out, key)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    done: dict[str, set[int]] = {}
    for name in splits:
        path = folder / f"samples_{name}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        done[name] = {json.loads(line)["base_seed"] for line in lines}
    # Interleaved across splits, so an interrupted run keeps every split in proportion.
    longest = max(map(len, splits.values()))
    work = [
        (name, seeds[i])
        for i in range(longest)
        for name, seeds in splits.items()
        if i < len(seeds) and seeds[i] not in done[name]
    ]
    handles = {name: (folder / f"samples_{name}.jsonl").open("a") for name in splits}
    start = time.perf_counter()
    try:
        with Pool(jobs) as pool:
            results = pool.imap(_rows, [(seed, copies) for _, seed in work], chunksize=2)
            for count, ((name, _), rows) in enumerate(zip(work, results, strict=True), 1):
                for row in rows:
                    handles[name].write(json.dumps(row) + "\n")
                handles[name].flush()
                if log and (count % 25 == 0 or count == len(work)):
                    elapsed = time.perf_counter() - start
                    sys.stderr.write(f"{count}/{len(work)} bases, {elapsed:.0f} s\n")
    finally:
        for handle in handles.values():
            handle.close()
    (folder / "key.json").write_text(
        json.dumps({"key": key, "sources": _SOURCES, "copies": copies}, indent=1)
    )
    return folder


def folder_key(folder: Path) -> str:
    """The data key of the code that made ``folder``'s rows (its ``key.json``, written by
    :func:`generate`), which a model fitted on them records."""
    return str(json.loads((folder / "key.json").read_text())["key"])


def load_split(folder: Path, split: str) -> list[dict]:
    """The rows of one split, in (base seed, copy) order whatever order they were written in."""
    rows = [json.loads(line) for line in (folder / f"samples_{split}.jsonl").read_text().splitlines()]
    unique = {(row["base_seed"], row["copy"]): row for row in rows}  # a resumed base may repeat
    return [unique[key] for key in sorted(unique)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/runs/verdict"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    sys.stdout.write(f"{generate(args.out, args.jobs)}\n")


if __name__ == "__main__":
    main()
