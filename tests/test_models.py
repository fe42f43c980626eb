"""The learned networks: registry, shapes, determinism, known answers, checkpoints.

Every test that can is parametrised over :func:`qcgate.models.registry.list_models`, so a newly registered
network is checked without touching this file (it only needs an entry in ``TINY_CONFIGS``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from qcgate.models.checkpoint import build_model, load_checkpoint, save_checkpoint  # noqa: E402
from qcgate.models.nets.msm import MSMNet  # noqa: E402
from qcgate.models.nets.rank_effnet import A_BETTER, B_BETTER, SIMILAR, PairwiseClassifier  # noqa: E402
from qcgate.models.nets.smoke import TINY_CONFIGS, settle_batchnorm  # noqa: E402
from qcgate.models.registry import config_class, create_model, list_models, model_name  # noqa: E402

MODELS = list_models()


def tiny(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, TINY_CONFIGS[name])


def inputs(model: torch.nn.Module, batch: int = 3, seed: int = 1) -> torch.Tensor:
    """Random non-negative inputs of a size the model accepts (not its tile, to exercise any size)."""
    spec = model.scorer_spec()
    generator = torch.Generator().manual_seed(seed)
    if spec.kind == "patch3d":
        shape = spec.tile
    else:
        shape = (
            tuple(2 * spec.spatial_multiple * k for k in (2, 3)) if spec.spatial_multiple > 1 else (40, 56)
        )
    return torch.rand(batch, 1, *shape, generator=generator)


def test_registry_names_the_three_networks() -> None:
    assert MODELS == ["hysnet", "msm", "rank_effnet"]
    assert set(TINY_CONFIGS) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_config_is_a_dataclass_and_dicts_build_the_same_model(name: str) -> None:
    config = config_class(name)(**TINY_CONFIGS[name])
    assert dataclasses.is_dataclass(config)
    torch.manual_seed(0)
    from_dict = create_model(name, dataclasses.asdict(config))
    assert from_dict.config == config  # tuples survive the dict round trip
    assert model_name(from_dict) == name


def test_unknown_names_and_fields_are_refused() -> None:
    with pytest.raises(KeyError, match="registered: hysnet, msm, rank_effnet"):
        create_model("resnet")
    with pytest.raises(ValueError, match="no field"):
        create_model("msm", {"base_widht": 8})
    with pytest.raises(TypeError, match='Argument "config"'):
        create_model("msm", config_class("hysnet")())


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_scorer_shapes(name: str) -> None:
    model = tiny(name).eval()
    x = inputs(model)
    with torch.no_grad():
        output = model(x)
        scores = model.scorer()(x)
    if name == "msm":
        assert output.shape == x.shape  # (B, 1, H, W) restored image
    else:
        assert output.shape == (x.shape[0],)
    assert scores[0].shape == (x.shape[0],)
    assert torch.isfinite(scores[0]).all()


@pytest.mark.parametrize("name", MODELS)
def test_seeded_construction_and_forward_are_deterministic(name: str) -> None:
    first, second, other = tiny(name, seed=7).eval(), tiny(name, seed=7).eval(), tiny(name, seed=8).eval()
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    x = inputs(first)
    with torch.no_grad():
        assert torch.equal(first.scorer()(x)[0], second.scorer()(x)[0])
        assert not torch.equal(first.scorer()(x)[0], other.scorer()(x)[0])


@pytest.mark.slow  # full-size windows through every network: about 4 s in all
@pytest.mark.parametrize("name", MODELS)
def test_a_window_scores_the_same_alone_or_in_a_batch(name: str) -> None:
    model = tiny(name)
    settle_batchnorm(model, [inputs(model, batch=4, seed=s) for s in range(2)])
    x = inputs(model, batch=4, seed=5)
    with torch.no_grad():
        batched = model.scorer()(x)[0]
        alone = torch.cat([model.scorer()(x[i : i + 1])[0] for i in range(4)])
    torch.testing.assert_close(alone, batched, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("msm", 0.3e6, 1.0e6), ("hysnet", 0.1e6, 0.5e6), ("rank_effnet", 0.05e6, 0.5e6)],
)
def test_default_sizes_stay_small_for_cpu_training(name: str, low: float, high: float) -> None:
    model = create_model(name)
    assert low <= sum(p.numel() for p in model.parameters()) <= high


def test_rank_effnet_scales_up_to_b0() -> None:
    b0 = create_model("rank_effnet", {"width_mult": 1.0, "depth_mult": 1.0})
    count = sum(p.numel() for p in b0.parameters())
    assert 3.9e6 < count < 4.1e6  # torchvision's b0 is 4.0 M without its 1000-class head
    assert len(b0.blocks) == 16  # b0's 1 + 2 + 2 + 3 + 3 + 4 + 1 MBConv blocks


def test_msm_score_is_the_masked_mean_residual() -> None:
    """Known answer: a network predicting input + c scores |c| (L1) or c^2 (L2) inside the mask."""
    for distance, expected in (("l1", 0.25), ("l2", 0.0625)):
        net = MSMNet(MSMNet.Config(base_width=4, depth=2, groups=2, tile=64, distance=distance)).eval()
        torch.nn.init.zeros_(net.head.weight)
        torch.nn.init.constant_(net.head.bias, -0.25)  # prediction = image - 0.25 everywhere
        image = torch.zeros(2, 1, 32, 32)
        image[0, 0, 8:24, 8:24] = 1.0  # foreground: a bright square
        with torch.no_grad():
            score, residual = net.scorer(with_residual_map=True)(image)
        assert score[0].item() == pytest.approx(expected)
        assert score[1].item() == 0.0  # no foreground: nothing to average
        torch.testing.assert_close(residual, torch.full_like(image, 0.25))


def test_hysnet_generates_different_regressors_for_different_content() -> None:
    model = tiny("hysnet").eval()
    x = inputs(model, batch=2)
    x[1] = x[1].flip(-1) * 0.2
    with torch.no_grad():
        features = model.stem(x)
        for stage in model.stages:
            features = stage(features)
        weight, bias = model.hyper[0](features)
        quality, snr = model.forward_with_snr(x)
    assert weight.shape == (2, 4, 8)
    assert bias.shape == (2, 4)
    assert not torch.allclose(weight[0], weight[1])
    assert quality.shape == snr.shape == (2,)


def test_pairwise_classifier_is_symmetric_under_swapping_the_pair() -> None:
    torch.manual_seed(0)
    classifier = PairwiseClassifier()
    assert sum(p.numel() for p in classifier.parameters()) == 2 * (16 + 16 + 16 + 1)
    a, b = torch.randn(5), torch.randn(5)
    forward, swapped = classifier(a, b), classifier(b, a)
    assert forward.shape == (5, 3)
    torch.testing.assert_close(forward[:, A_BETTER], swapped[:, B_BETTER])
    torch.testing.assert_close(forward[:, SIMILAR], swapped[:, SIMILAR])
    torch.testing.assert_close(classifier.probabilities(a, b).sum(dim=1), torch.ones(5))


@pytest.mark.slow  # trains or round-trips a model: about 2 s
def test_pairwise_training_learns_to_rank() -> None:
    """Scores and classifier trained jointly by cross-entropy recover a known order of 8 items."""
    torch.manual_seed(0)
    truth = torch.arange(8.0)
    scores = torch.nn.Parameter(torch.zeros(8))
    classifier = PairwiseClassifier()
    optimiser = torch.optim.Adam(
        [{"params": [scores], "lr": 0.1}, {"params": classifier.parameters(), "lr": 0.01}]
    )
    a, b = torch.combinations(torch.arange(8)).T
    labels = torch.where(truth[a] > truth[b], A_BETTER, B_BETTER)
    for _ in range(300):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(classifier(scores[a], scores[b]), labels)
        loss.backward()
        optimiser.step()
    assert torch.equal(torch.argsort(scores.detach()), torch.argsort(truth))


@pytest.mark.slow  # trains or round-trips a model: about 2 s
@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_rebuilds_the_model_with_its_provenance(name: str, tmp_path: Path) -> None:
    model = tiny(name, seed=3)
    settle_batchnorm(model, [inputs(model, batch=4)])
    path = tmp_path / f"{name}.pt"
    save_checkpoint(
        path, model, seed=3, data_version="synthetic-v1", steps=42, training={"pretext": "restore"}
    )
    checkpoint = load_checkpoint(path)
    assert (checkpoint.model, checkpoint.seed, checkpoint.data_version, checkpoint.steps) == (
        name,
        3,
        "synthetic-v1",
        42,
    )
    assert checkpoint.config == dataclasses.asdict(model.config)
    assert checkpoint.training == {"pretext": "restore"}
    assert checkpoint.git_commit  # a commit hash (maybe "-dirty") or "unknown" outside git
    rebuilt = build_model(checkpoint)
    x = inputs(model, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.scorer()(x)[0], model.eval().scorer()(x)[0], rtol=0, atol=0)
