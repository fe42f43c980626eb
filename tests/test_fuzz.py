"""The receiver's parse-and-validate path under coverage-guided fuzzing (atheris, tests/fuzz/receive.py).

Every input that once crashed it (tests/fuzz/regressions: a Rust decoder's panic, a broken deflate
stream, unknown VRs, a sequence where Pixel Data belongs...) is replayed, and a bounded fuzzing run
from the seed corpus must end without a crash. ``make fuzz`` runs the long version.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses that instrument pydicom: tens of seconds

FUZZ = Path(__file__).resolve().parent / "fuzz"
BOUNDED_RUNS = 3000


def fuzz(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FUZZ / "receive.py"), *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def test_every_input_that_once_crashed_the_receiver_is_refused_cleanly(tmp_path: Path) -> None:
    regressions = sorted((FUZZ / "regressions").glob("*.dcm"))
    assert len(regressions) >= 8
    replay = fuzz(*map(str, regressions), cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert replay.stderr.count("Running: ") == len(regressions)


def test_a_bounded_fuzzing_run_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    run = fuzz(str(corpus), f"-runs={BOUNDED_RUNS}", "-seed=1", f"-artifact_prefix={tmp_path}/", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done is not None
    assert int(done.group(1)) >= BOUNDED_RUNS
    assert len(list(corpus.iterdir())) >= 6, "the seed corpus was written"
    assert not list(tmp_path.glob("crash-*"))
