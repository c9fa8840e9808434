"""Every registered model spec: build, forward/backward, dict round trip, checkpoint reload (timm's
one parametrized test over the registry), plus the CNN's and MLP's shapes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from hpsearch import CAE, CNN, MLP, ModelSpec, Torchvision, TrialConfig, UNet, register_model
from hpsearch.data import get_source
from hpsearch.errors import InfeasibleModel, ModelError
from hpsearch.models import ACTIVATIONS, Encoder, build, measure, registered, spec_from_dict
from hpsearch.results.checkpoints import load_checkpoint, save

DIGITS = get_source("digits").info
CIFAR = get_source("cifar10").info


def _encoder(tmp: Path) -> Encoder:
    source = CNN(blocks=1, filters=4, dense=8)
    path = tmp / "source.pt"
    save(path, build(source, DIGITS), source, {"dataset": {"shape": list(DIGITS.shape), "classes": ["a", "b"]}})
    return Encoder.of(path, freeze="head_only")


EXAMPLES = {
    "cnn": lambda tmp: CNN(blocks=2, filters=4, dense=8, convs=2, init="kaiming"),
    "mlp": lambda tmp: MLP(hidden=(16, 8), norm="layer", dropout=0.1, init="orthogonal"),
    "torchvision": lambda tmp: Torchvision(arch="resnet18", min_size=16, freeze="first_k", freeze_k=2),
    "encoder": _encoder,
    "cae": lambda tmp: CAE(depth=1, filters=4, latent=8, upsampling="nearest", batch_norm=True),
    "unet": lambda tmp: UNet(depth=1, filters=4, upsampling="transposed", activation="elu"),
}
N = DIGITS.num_classes
OUT_SHAPE = {"cae": (4, *DIGITS.shape), "unet": (4, N, *DIGITS.shape[1:])}  # an image; per-pixel classes
BUILTIN = sorted(n for n, c in registered().items() if c.__module__.startswith("hpsearch."))


def test_every_builtin_spec_has_an_example() -> None:
    assert sorted(EXAMPLES) == BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_every_registered_spec_builds_trains_round_trips_and_reloads(name: str, tmp_path: Path) -> None:
    spec = EXAMPLES[name](tmp_path)
    assert spec.name == name and spec_from_dict(spec.to_dict()) == spec
    config = TrialConfig(model=spec)
    assert TrialConfig.from_dict(config.to_dict()) == config
    model = build(spec, DIGITS)
    spec.prepare(model)
    model.train()
    spec.on_epoch(model, 1)
    out = model(torch.randn(4, *DIGITS.shape))
    assert out.shape == OUT_SHAPE.get(name, (4, N))
    out.sum().backward()
    assert any(p.grad is not None for p in model.parameters())
    size = measure(spec, DIGITS)
    assert size.params == sum(p.numel() for p in model.parameters()) and size.flops > 0

    path = tmp_path / "model.pt"
    save(path, model, spec, {"dataset": {"shape": list(DIGITS.shape), "classes": list(DIGITS.classes)}})
    again, ckpt = load_checkpoint(path)
    x = torch.randn(2, *DIGITS.shape)
    assert type(again) is type(model) and torch.allclose(again(x), model.eval()(x))
    assert ckpt["model"]["name"] == name


@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10"])
@pytest.mark.parametrize("organisation, activation, bn",
                         [("same", "relu", False), ("half", "relu", True)] + [("double", a, True) for a in ACTIVATIONS])
def test_cnn_runs_forward_and_backward(dataset: str, organisation: str, activation: str, bn: bool) -> None:
    info = get_source(dataset).info
    model = build(CNN(blocks=3, filters=8, organisation=organisation, activation=activation, batch_norm=bn,
                      dropout=0.1, dense=16), info)
    out = model(torch.randn(4, *info.shape))
    assert out.shape == (4, info.num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_filter_organisation() -> None:
    assert CNN(blocks=3, filters=16, organisation="double").block_filters() == [16, 32, 64]
    assert CNN(blocks=3, filters=16, organisation="half").block_filters() == [16, 8, 4]
    assert CNN(blocks=3, filters=16, organisation="same").block_filters() == [16, 16, 16]


@pytest.mark.parametrize("kw, layers", [
    (dict(downsample="stride"), ["Conv2d(stride=2)"]),
    (dict(padding="valid", convs=2, kernel=3), ["Conv2d", "Conv2d", "MaxPool2d"]),
    (dict(bn_position="after"), ["Conv2d(bias)", "ReLU", "BatchNorm2d"]),
    (dict(head="gap"), ["AdaptiveAvgPool2d"]),
])
def test_cnn_variants_build_what_they_say(kw: dict, layers: list[str]) -> None:
    model = build(CNN(blocks=1, filters=4, dense=0, **kw), CIFAR)
    names = []
    for m in model:
        if isinstance(m, nn.Conv2d):
            names.append("Conv2d" + ("(stride=2)" if m.stride == (2, 2) else "") + ("(bias)" if m.bias is not None and
                                                                                     kw.get("bn_position") else ""))
        else:
            names.append(type(m).__name__)
    it = iter(names)
    assert all(any(n == want for n in it) for want in layers), names
    assert model(torch.randn(2, *CIFAR.shape)).shape == (2, 10)


def test_valid_convolutions_that_shrink_the_image_away_are_infeasible() -> None:
    with pytest.raises(InfeasibleModel, match="below one pixel"):
        build(CNN(blocks=4, filters=4, padding="valid", kernel=5, convs=2), DIGITS)


def test_mlp_layers_and_the_parameter_count_of_784_512_512_10() -> None:
    info = get_source("fashion_mnist").info
    assert measure(MLP(hidden=(512, 512)), info).params == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10


def test_init_schemes_are_seedable_and_differ() -> None:
    a = build(CNN(blocks=1, filters=4, init="orthogonal", init_seed=3), DIGITS)
    b = build(CNN(blocks=1, filters=4, init="orthogonal", init_seed=3), DIGITS)
    c = build(CNN(blocks=1, filters=4, init="xavier", init_seed=3), DIGITS)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)


def test_user_spec_must_be_a_registered_frozen_dataclass() -> None:
    with pytest.raises(ModelError, match="frozen dataclass"):
        @register_model("not_frozen")
        @dataclass
        class NotFrozen(ModelSpec):
            width: int = 3

    with pytest.raises(ModelError, match="already registered by hpsearch"):
        @register_model("cnn")
        @dataclass(frozen=True)
        class MyCNN(ModelSpec):
            width: int = 3

    @dataclass(frozen=True)
    class Unregistered(CNN):
        pass

    with pytest.raises(ValueError, match="Unregistered is not registered"):
        TrialConfig(model=Unregistered())
    with pytest.raises(ValueError, match="must be a registered hpsearch.ModelSpec, got Linear"):
        TrialConfig(model=nn.Linear(3, 4))  # type: ignore[arg-type]


def test_configs_stored_by_hpsearch_0_1_read_as_the_cnn_spec() -> None:
    old = {"model": {"blocks": 1, "filters": 8, "organisation": "double", "kernel": 3, "activation": "relu",
                     "batch_norm": True, "dropout": 0.0, "dense": 0},
           "optim": {"name": "adam", "lr": 0.004, "weight_decay": 0.0, "momentum": 0.0, "nesterov": False,
                     "scheduler": "none"},
           "batch_size": 64, "augment": "none"}
    config = TrialConfig.from_dict(old)
    assert config.model == CNN(blocks=1, filters=8, dense=0) and config.optim.name == "adam"


@dataclass(frozen=True)
class _Info:
    shape: tuple[int, int, int]
    num_classes: int


@pytest.mark.parametrize("kernel", [3, 4, 5])
@pytest.mark.parametrize("padding", ["same", "valid", 0, 1, 2])
@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
def test_every_kernel_and_padding_a_report_sweeps_builds(kernel: int, padding: str | int, downsample: str) -> None:
    """kernel ∈ {3, 4, 5} refused the whole run ("kernel must be odd with same padding"), and
    padding was same/valid only, not 0/1/2 (issue 33). Same padding keeps the size for any kernel."""
    from hpsearch.models import layers

    info = _Info((1, 28, 28), 10)
    spec = CNN(blocks=2, filters=4, kernel=kernel, padding=padding, downsample=downsample, dense=8,  # type: ignore[arg-type]
               batch_norm=False)
    model = build(spec, info)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    if padding == "same" and downsample == "maxpool":
        first_conv = next(r for r in layers(spec, info) if r.kind == "Conv2d")
        assert first_conv.output == (1, 4, 28, 28)


def test_no_bias_anywhere_is_one_setting_away() -> None:
    """bias=False removed the convs' biases and kept both dense layers' (issue 33): head_bias too."""
    info = _Info((1, 8, 8), 10)
    model = build(CNN(blocks=1, filters=4, dense=8, bias=False, head_bias=False), info)
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias") and "." in n
                and isinstance(model[int(n.split(".")[0])], torch.nn.Linear | torch.nn.Conv2d)]
    kept = build(CNN(blocks=1, filters=4, dense=8, bias=False), info)  # as before: the head keeps its biases
    assert sum(isinstance(m, torch.nn.Linear) and m.bias is not None for m in kept) == 2


def test_a_backbones_new_head_can_have_hidden_layers() -> None:
    """"Replace the last layer with FC512 → GELU" needed a user spec (issue 33)."""
    from hpsearch.models import spec_from_dict

    spec = Torchvision(arch="resnet18", min_size=32, head_hidden=(512,), head_activation="gelu", head_dropout=0.1)
    assert spec_from_dict(spec.to_dict()) == spec
    model = build(spec, _Info((3, 32, 32), 10))
    head = model.head
    assert [type(m).__name__ for m in head] == ["Linear", "GELU", "Dropout", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[-1].out_features) == (512, 512, 10)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert [type(m).__name__ for m in [build(Torchvision(arch="resnet18", min_size=32), _Info((3, 32, 32), 10)).head]] \
        == ["Linear"]  # without it, the one linear layer as before (checkpoints keep their keys)
    with pytest.raises(ValueError, match="head_activation must be one of"):
        Torchvision(arch="resnet18", head_activation="swish2")
