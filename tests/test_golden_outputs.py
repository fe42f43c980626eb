"""The score/REST JSON and the SR of two fixed synthetic series are what the golden files say.

The golden files in ``tests/fixtures/golden`` were made by ``tests/make_golden.py``; this test runs
the same generation in a temporary directory and compares through ``tests/golden_compare.py``
(UIDs, dates and timings blanked, floats to a relative 1e-6). A difference means qcgate now reports
something else for the same input: either a regression, or an intended change, after which the
files are regenerated with ``python -m tests.make_golden`` and the diff reviewed.
"""

from __future__ import annotations

import json
from typing import Any

import onnxruntime as ort
import pytest

from tests.golden_compare import assert_same, normalise
from tests.make_golden import GOLDEN_DIR, SERIES, generate

# The golden learned-metric values come from ONNX Runtime's CPU provider (fp32 models); with CUDA the
# service runs the fp16 files, whose scores differ by far more than the tolerance.
pytestmark = pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(),
    reason="golden outputs are CPU-provider values; CUDA would run the fp16 models",
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate(tmp_path_factory.mktemp("golden"))


@pytest.mark.slow  # the golden series are generated and scored first: about 3 s
def test_the_golden_files_are_the_generated_set(generated: dict[str, Any]) -> None:
    committed = sorted(path.name for path in GOLDEN_DIR.glob("*.json"))
    assert committed == sorted(generated)
    assert len(committed) == 2 * len(SERIES)


@pytest.mark.slow  # the golden series are generated and scored first: about 3 s
@pytest.mark.parametrize(
    "name", [f"{kind}_{series.name}.json" for series in SERIES for kind in ("series", "sr")]
)
def test_output_matches_golden(generated: dict[str, Any], name: str) -> None:
    golden = json.loads((GOLDEN_DIR / name).read_text())
    assert_same(golden, generated[name], name)


@pytest.mark.slow  # the golden series are generated and scored first: about 3 s
def test_every_metric_has_a_value(generated: dict[str, Any]) -> None:
    """The inputs exercise every metric, classic and learned: none is missing or null."""
    for series in SERIES:
        result = generated[f"series_{series.name}.json"]
        assert result["status"] == "done"
        metrics = result["metrics"]
        assert {"snr", "cnr", "msm", "hysnet", "rank_effnet"} <= set(metrics)
        for name in ("msm", "hysnet", "rank_effnet"):
            assert isinstance(metrics[name]["value"], float), name
            assert isinstance(metrics[name]["quality"], float), name


@pytest.mark.slow  # the golden series are generated and scored first: about 3 s
def test_the_comparison_notices_a_changed_value(generated: dict[str, Any]) -> None:
    """The comparison is not vacuous: a metric off by 1e-4 relative, or a changed code, is caught,
    while a changed timing or UID is not."""
    name = f"series_{SERIES[0].name}.json"
    changed = json.loads(json.dumps(generated[name]))
    changed["metrics"]["msm"]["value"] *= 1 + 1e-4
    with pytest.raises(AssertionError, match=r"metrics\.msm\.value"):
        assert_same(generated[name], changed, name)

    harmless = json.loads(json.dumps(generated[name]))
    harmless["timings"]["started_at"] = "2000-01-01T00:00:00Z"
    harmless["series_instance_uid"] = "2.25.1"
    assert normalise(harmless) == normalise(generated[name])

    sr = f"sr_{SERIES[1].name}.json"
    changed_sr = json.loads(json.dumps(generated[sr]))
    group = changed_sr["content"][-1]["children"][0]["children"]
    (finding,) = [item for item in group if item["concept_name"]["CodeMeaning"] == "Quality Finding"]
    finding["value"]["CodeValue"] = "warn"
    with pytest.raises(AssertionError, match="CodeValue"):
        assert_same(generated[sr], changed_sr, sr)


def test_golden_files_stay_small() -> None:
    assert sum(path.stat().st_size for path in GOLDEN_DIR.glob("*.json")) < 200_000
