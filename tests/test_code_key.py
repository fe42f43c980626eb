"""Training caches are keyed by the code that fills them, so a changed simulator never reads a stale cache."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qcgate.models.code_key import CACHE_SOURCES, cache_version, code_digest
from qcgate.models.synthesis import DATA_VERSION
from qcgate.models.training.pool import SyntheticPool


@pytest.fixture
def scratch_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "qcgate_scratch_simulator.py"
    path.write_text('"""A simulator."""\n\ndef noise(x):\n    return x + 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    sys.modules.pop("qcgate_scratch_simulator", None)


def test_editing_prose_keeps_the_key_and_editing_code_changes_it(scratch_module: Path) -> None:
    before = code_digest(["qcgate_scratch_simulator"])
    scratch_module.write_text(
        '"""A simulator, documented better."""\n\n# why\ndef noise(x):\n    return x + 1\n'
    )
    assert code_digest(["qcgate_scratch_simulator"]) == before
    scratch_module.write_text('"""A simulator."""\n\ndef noise(x):\n    return x + 2\n')
    assert code_digest(["qcgate_scratch_simulator"]) != before


def test_every_training_cache_lives_under_the_code_keyed_version(tmp_path: Path) -> None:
    version = cache_version()
    assert version.startswith(f"{DATA_VERSION}-")
    assert version.removeprefix(f"{DATA_VERSION}-") == code_digest(CACHE_SOURCES)[:12]
    pool = SyntheticPool(0, 1, cache_dir=tmp_path)
    assert pool.directory is not None
    assert pool.directory.relative_to(tmp_path).parts[0] == version
