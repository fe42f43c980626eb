"""Export proves itself: full ONNX check, named dynamic axes, parity on unseen inputs, a manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import onnxruntime as ort  # noqa: E402
from pydicom.uid import UID  # noqa: E402

from qcgate.contract.manifest import load_manifest, sha256_of  # noqa: E402
from qcgate.export.onnx_export import (  # noqa: E402
    OPSET,
    ParityError,
    check_parity,
    export_checkpoint,
    export_fp16,
    export_onnx,
    fp16_error,
    smooth_images,
)
from qcgate.models.checkpoint import save_checkpoint  # noqa: E402
from qcgate.models.registry import list_models  # noqa: E402
from tests.tiny_models import export_tiny_models, tiny_model  # noqa: E402

pytestmark = pytest.mark.slow  # exports every model to ONNX and checks parity: about 30 s in all

MODELS = list_models()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.nn.Module]]:
    """Every registered network, tiny and untrained, exported once into one folder with a manifest."""
    out = tmp_path_factory.mktemp("onnx")
    return out, export_tiny_models(out)


@pytest.mark.parametrize("name", MODELS)
def test_exported_graph_passes_the_full_checker_with_named_dynamic_axes(
    name: str, exported: tuple[Path, dict[str, torch.nn.Module]]
) -> None:
    out, models = exported
    graph = onnx.load(str(out / f"{name}.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    assert {o.domain: o.version for o in graph.opset_import}[""] == OPSET
    spec = models[name].scorer_spec()
    (image,) = graph.graph.input
    assert image.name == spec.input_name
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param  # batch
    assert dims[1].dim_value == 1  # one channel
    assert all(d.dim_param for d in dims[2:])  # every spatial axis is dynamic
    assert [o.name for o in graph.graph.output] == ["score"]
    assert [d.dim_param for d in graph.graph.output[0].type.tensor_type.shape.dim] == [dims[0].dim_param]


@pytest.mark.parametrize("name", MODELS)
def test_manifest_records_parity_within_tolerance(
    name: str, exported: tuple[Path, dict[str, torch.nn.Module]]
) -> None:
    out, models = exported
    entry = next(m for m in load_manifest(out / "manifest.json").models if m.name == name)
    spec = models[name].scorer_spec()
    assert entry.sha256 == sha256_of(out / entry.file)
    assert UID(entry.device_uid).is_valid
    assert entry.opset == OPSET
    assert (entry.input.kind, entry.input.tensor_name, entry.input.tile) == (
        spec.kind,
        spec.input_name,
        spec.tile,
    )
    assert entry.output.higher_is_better is spec.higher_is_better
    assert entry.calibration.calibrated is False
    assert entry.parity.worst_ratio <= 1.0
    assert entry.parity.max_abs_error < entry.parity.atol
    assert len(entry.parity.input_shapes) == 3
    assert entry.benchmarks == {}


@pytest.mark.parametrize("name", MODELS)
def test_parity_holds_on_other_unseen_sizes(
    name: str, exported: tuple[Path, dict[str, torch.nn.Module]]
) -> None:
    out, models = exported
    spec = models[name].scorer_spec()
    m = spec.spatial_multiple
    shapes = (
        [(5, 1, 2 * spec.tile[0], spec.tile[1], spec.tile[2])]
        if spec.kind == "patch3d"
        else [(5, 1, 3 * m * 3, 5 * m * 2)]
    )
    result = check_parity(models[name], out / f"{name}.onnx", shapes=shapes)
    assert result.worst_ratio <= 1.0


def test_parity_catches_a_graph_that_differs_from_the_model(
    exported: tuple[Path, dict[str, torch.nn.Module]], tmp_path: Path
) -> None:
    out, models = exported
    graph = onnx.load(str(out / "rank_effnet.onnx"))
    weights = max(graph.graph.initializer, key=lambda t: len(t.raw_data))
    array = onnx.numpy_helper.to_array(weights).copy()
    array *= 1.01
    weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
    onnx.save(graph, str(tmp_path / "tampered.onnx"))
    with pytest.raises(ParityError, match="differs from PyTorch"):
        check_parity(models["rank_effnet"], tmp_path / "tampered.onnx")


def test_msm_can_export_its_residual_map(tmp_path: Path) -> None:
    model = tiny_model("msm")
    export_onnx(model, tmp_path / "msm.onnx", with_residual_map=True)
    session = ort.InferenceSession(str(tmp_path / "msm.onnx"), providers=["CPUExecutionProvider"])
    images = smooth_images((2, 1, 48, 40), seed=3)
    score, residual = session.run(["score", "residual"], {"image": images})
    assert score.shape == (2,)
    assert residual.shape == images.shape


def test_checkpoint_export_carries_provenance_and_a_new_device_uid(
    exported: tuple[Path, dict[str, torch.nn.Module]], tmp_path: Path
) -> None:
    out, _ = exported
    earlier = next(m for m in load_manifest(out / "manifest.json").models if m.name == "msm")
    save_checkpoint(
        tmp_path / "msm.pt",
        tiny_model("msm"),
        seed=11,
        data_version="synthetic-v2",
        steps=500,
        git_commit="f00",
    )
    entry = export_checkpoint(tmp_path / "msm.pt", tmp_path / "onnx", version="0.3.0", trained_on="cpu")
    assert (entry.provenance.seed, entry.provenance.data_version, entry.provenance.steps) == (
        11,
        "synthetic-v2",
        500,
    )
    assert (entry.provenance.git_commit, entry.provenance.trained_on) == ("f00", "cpu")
    assert entry.sha256 == earlier.sha256  # the same weights export to the same bytes
    assert entry.device_uid != earlier.device_uid  # yet every export is a new device (IHE AIR)
    assert load_manifest(tmp_path / "onnx" / "manifest.json").models == (entry,)


def test_fp16_variant_stays_close_to_float32(
    exported: tuple[Path, dict[str, torch.nn.Module]], tmp_path: Path
) -> None:
    pytest.importorskip("onnxconverter_common")
    out, models = exported
    export_fp16(out / "hysnet.onnx", tmp_path / "hysnet.fp16.onnx")
    graph = onnx.load(str(tmp_path / "hysnet.fp16.onnx"))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O kept
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    error = fp16_error(models["hysnet"], tmp_path / "hysnet.fp16.onnx", ["CPUExecutionProvider"])
    assert np.isfinite(error)
    assert error < 1e-2
