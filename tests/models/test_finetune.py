"""torchvision backbones and our own encoders, fine-tuned: weights, freeze strategies, BN, lr groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from hpsearch import CNN, OptimConfig, Torchvision, TrialConfig
from hpsearch.data import DataSpec, load_search_data
from hpsearch.errors import ModelError
from hpsearch.models import Encoder, build
from hpsearch.results.checkpoints import save
from hpsearch.train.loop import fit

SEED = 7


@pytest.fixture(scope="module")
def digits() -> object:
    return load_search_data(DataSpec("digits", train_subset=96), Path("."))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 state_dict as a user would save one (ImageNet head, RGB first conv)."""
    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def _initial(spec: Torchvision, digits) -> nn.Module:  # noqa: ANN001
    torch.manual_seed(SEED)  # fit seeds the same way before it builds
    model = build(spec, digits.info)
    spec.prepare(model)
    return model


def _train(spec: Torchvision, digits, epochs: int = 1) -> nn.Module:  # noqa: ANN001
    cfg = TrialConfig(model=spec, optim=OptimConfig(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3),
                      batch_size=32)
    return fit(cfg, digits, epochs=epochs, seed=SEED, device=torch.device("cpu")).model


def _moved(before: nn.Module, after: nn.Module) -> list[bool]:
    """Per stage: did any parameter or BN running statistic change?"""
    out = []
    for a, b in zip(before.stages, after.stages):
        sa, sb = a.state_dict(), b.state_dict()
        out.append(any(not torch.equal(sa[k], sb[k]) for k in sa if sa[k].is_floating_point()))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["none", "file"])
@pytest.mark.parametrize("freeze, kw, epochs, moved", [
    ("none", {}, 1, [True] * 5),
    ("head_only", {}, 1, [False] * 5),
    ("first_k", {"freeze_k": 2}, 1, [False, False, True, True, True]),
    ("gradual", {"unfreeze_every": 1}, 2, [False, False, False, False, True]),  # epoch 2: top stage only
])
def test_resnet18_freeze_strategies_leave_frozen_weights_and_bn_statistics_untouched(
        weights: str, freeze: str, kw: dict, epochs: int, moved: list[bool], weights_file: Path, digits) -> None:  # noqa: ANN001
    spec = Torchvision(arch="resnet18", weights=str(weights_file) if weights == "file" else None,
                       freeze=freeze, min_size=32, **kw)
    before = _initial(spec, digits)
    assert len(before.stages) == 5  # stem (conv1 + bn1), layer1 … layer4
    after = _train(spec, digits, epochs)
    assert _moved(before, after) == moved
    head_before, head_after = before.head.state_dict(), after.head.state_dict()
    assert not torch.equal(head_before["weight"], head_after["weight"])  # the head always trains


def test_weights_file_loads_every_trunk_weight_and_sums_rgb_into_grey(weights_file: Path, digits) -> None:  # noqa: ANN001
    model = _initial(Torchvision(weights=str(weights_file)), digits)
    state = torch.load(weights_file, weights_only=True)
    assert torch.equal(model.net.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    assert torch.allclose(model.net.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    assert model.net.fc.out_features == 10


def test_backbone_lr_multiplier_makes_two_groups() -> None:
    spec = Torchvision(backbone_lr=0.1)
    model = build(spec, CNN_INFO)
    groups = spec.param_groups(model, 0.01)
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


class _Info:
    shape = (3, 32, 32)
    num_classes = 4


CNN_INFO = _Info()


def test_missing_torchvision_weights_offline_name_the_file_and_folder(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    spec = Torchvision(arch="resnet18", weights="DEFAULT")
    model = build(spec, CNN_INFO)
    with pytest.raises(ModelError, match=r"resnet18 weights: .*torch/hub/checkpoints/resnet18-[0-9a-f]+\.pth does not "
                                         r"exist; copy it from https://download\.pytorch\.org/models/resnet18"):
        spec.prepare(model)
    with pytest.raises(ModelError, match="resnet18 has no weights 'IMAGENET9K'"):
        Torchvision(weights="IMAGENET9K").weights_file()


def _offline(*args: object, **kw: object) -> None:
    raise OSError("network unreachable")


def test_encoder_from_a_checkpoint_reuses_the_trunk_with_a_new_head(tmp_path: Path, digits) -> None:  # noqa: ANN001
    source_spec = CNN(blocks=2, filters=8, dense=16)
    torch.manual_seed(0)
    source = build(source_spec, digits.info)
    path = tmp_path / "source.pt"
    save(path, source, source_spec, {"dataset": {"shape": list(digits.info.shape), "classes": ["x"] * 10}})
    spec = Encoder.of(path, freeze="head_only")
    model = _initial(spec, digits)  # type: ignore[arg-type]
    assert torch.equal(model.net[0].weight, source[0].weight)  # the trunk's first conv came along
    after = _train(spec, digits)  # type: ignore[arg-type]
    assert _moved(model, after) == [False] * len(model.stages)
    with pytest.raises(ModelError, match="was trained on 1×8×8 images; this study's are 3×32×32"):
        build(spec, CNN_INFO)


@pytest.mark.slow
def test_the_finetune_study_runs_with_pretrained_weights_from_the_hub_cache_and_says_when_they_are_missing(
        work, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_file: Path) -> None:  # noqa: ANN001
    from conftest import write_cifar

    root = tmp_path / "cifar"
    write_cifar(root)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    r = work.cli("run", "finetune", "--n-trials", "2", "--data-root", str(root), expect=1)
    assert "resnet18 weights:" in r.output and "hub/checkpoints/resnet18-" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not work.db.exists()

    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True, exist_ok=True)  # _download made it before failing
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    (cache / url.rsplit("/", 1)[1]).write_bytes(weights_file.read_bytes())
    work.cli("run", "finetune", "--n-trials", "1", "--data-root", str(root), "--pruner", "none")
    rows = __import__("json").loads(work.cli("trials", "finetune", "--format", "json").output)
    assert [r["state"] for r in rows] == ["COMPLETE"] and {r["model"] for r in rows} == {"torchvision"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("freeze", ["head_only", "gradual"])
def test_freeze_strategies_hold_on_cuda(freeze: str, weights_file: Path, digits) -> None:  # noqa: ANN001
    """The same guarantees on a GPU: frozen stages keep weights and BN statistics, the model trains there."""
    data = load_search_data(DataSpec("digits", train_subset=96), Path("."), "cuda")
    spec = Torchvision(arch="resnet18", weights=str(weights_file), freeze=freeze, min_size=32)
    before = _initial(spec, digits)
    cfg = TrialConfig(model=spec, optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-2), batch_size=32)
    after = fit(cfg, data, epochs=2, seed=SEED, device=torch.device("cuda")).model
    assert all(p.is_cuda for p in after.parameters())
    expected = [False] * 5 if freeze == "head_only" else [False, False, False, False, True]
    assert _moved(before.cuda(), after) == expected


@pytest.mark.parametrize("arch, stages", [
    ("resnet18", 5), ("mobilenet_v3_small", 13), ("efficientnet_b0", 9), ("squeezenet1_0", 9),
    ("googlenet", 12), ("vit_b_32", 2), ("alexnet", 5), ("regnet_x_400mf", 2), ("convnext_tiny", 8),
])
def test_torchvision_backbones_take_grey_28px_images_and_cut_into_stages(arch: str, stages: int) -> None:
    """A new head, the first conv on one channel, and the input resized to what the network
    needs (AlexNet ≥ 63 px, ViT exactly 224), built on the meta device (no memory, no weights)."""
    class Grey:
        shape = (1, 28, 28)
        num_classes = 7

    device = "cpu" if arch.startswith("regnet") else "meta"  # RegNet reads its weights while it builds
    with torch.device(device), torch.no_grad():
        model = build(Torchvision(arch=arch), Grey)
        out = model.eval()(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 7) and len(model.stages) == stages
