"""`hpsearch inspect`'s layer table: its rows add up to what torch counts, on every built-in spec
and on a user's own, and the command shows them for a trial of a real study."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from conftest import Finished, Work
from hpsearch.models import CAE, CNN, MLP, ModelSpec, Torchvision, UNet, build, layers, measure, register_model


@dataclass(frozen=True)
class Info:
    shape: tuple[int, int, int]
    num_classes: int = 10


class _Scaled(nn.Module):
    """A module with a parameter of its own beside its children: its row must still be counted."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.body(x)


@register_model("test_layers_scaled")
@dataclass(frozen=True)
class Scaled(ModelSpec):
    def build(self, info) -> nn.Module:  # noqa: ANN001 - any ModelInfo
        return _Scaled()


SPECS = [
    (CNN(), Info((1, 28, 28))),
    (CNN(blocks=3, filters=16, batch_norm=True, bias=False, dense=64), Info((3, 32, 32))),
    (MLP(hidden=(32, 16)), Info((1, 8, 8))),
    (CAE(), Info((1, 28, 28))),
    (UNet(), Info((1, 32, 32), num_classes=2)),
    (Torchvision(arch="resnet18", min_size=32), Info((3, 32, 32))),
    (Scaled(), Info((1, 8, 8))),
]


@pytest.mark.parametrize("spec, info", SPECS, ids=[type(s).__name__ for s, _ in SPECS])
def test_the_rows_add_up_to_what_torch_counts(spec: ModelSpec, info: Info) -> None:
    rows = layers(spec, info)
    torch.manual_seed(0)
    model = build(spec, info)
    size = measure(spec, info)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters()) == size.params
    assert sum(r.trainable for r in rows) == size.trainable
    assert sum(r.flops for r in rows) == size.flops
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, *info.shape))
    last = [r for r in rows if r.output is not None][-1]
    assert last.output == tuple(out.shape)  # the last layer run gives the model's output
    assert len({r.name for r in rows}) == len(rows)


def test_frozen_layers_are_counted_apart() -> None:
    rows = layers(Torchvision(arch="resnet18", min_size=32, freeze="head_only"), Info((3, 32, 32)))
    assert 0 < sum(r.trainable for r in rows) < sum(r.params for r in rows)
    assert rows[-1].trainable == rows[-1].params  # the new head trains


@pytest.mark.slow
def test_inspect_shows_a_trials_layers(work: Work, tiny_search: Finished) -> None:
    work.adopt(tiny_search)
    shown = json.loads(work.cli("inspect", "--json").stdout)
    assert shown["chosen"] == "the best trial" and shown["input"] == [1, 8, 8]
    assert shown["layers"][0]["type"] == "Conv2d" and shown["layers"][-1]["output"] == [1, 10]
    assert shown["params"] == sum(row["params"] for row in shown["layers"])
    text = work.cli("inspect", "tiny", "--trial", "0").output
    assert "Conv2d" in text and "parameters (all trainable)" in text and "FLOPs per image" in text
    assert "--trial 99: study 'tiny' has trials 0–3" in work.cli("inspect", "--trial", "99", expect=2).output


@pytest.mark.slow
def test_inspect_draws_feature_maps_and_predictions_of_a_trained_trial(work: Work, tiny_retrained: Finished) -> None:
    from PIL import Image

    work.adopt(tiny_retrained)
    shown = json.loads(work.cli("inspect", "--feature-maps", "--images", "0,3", "--predictions", "12", "--json",
                                "--attributions", "all", "--neurons", "3", "--out", "pngs", "--device", "cpu").stdout)
    assert shown["weights"].startswith(f"trial {shown['trial']} trained again from seed")
    convs = [row for row in shown["layers"] if row["type"] == "Conv2d"]
    maps = [p for p in shown["png"] if "-layer-" in p]
    assert sum(p.endswith("-attributions.png") for p in shown["png"]) == 2  # one per image, every method in it
    assert sum(p.endswith("-neurons.png") for p in shown["png"]) == 2
    assert len(maps) == 2 * len(convs) and sum("-val3-" in p for p in maps) == len(convs)
    (grid,) = [p for p in shown["png"] if p.endswith("-predictions.png")]
    assert all(Image.open(p).format == "PNG" for p in shown["png"]) and Image.open(grid).size[1] > 100
    ckpt = next((tiny_retrained.folder / "runs" / "tiny").glob("trial*-seed*.pt"))  # the retrain wrote it there
    again = json.loads(work.cli("inspect", "--feature-maps", "--checkpoint", str(ckpt), "--json", "--out", "pngs2",
                                "--device", "cpu").stdout)
    assert again["weights"].startswith(f"weights from {ckpt}") and len(again["png"]) == len(convs)
    bad = work.cli("inspect", "--feature-maps", "--images", "0,99999", "--device", "cpu", expect=2).output
    assert "--images: the validation split has images 0–" in bad and bad.count("\n") == 1


def test_feature_maps_of_a_model_without_convolutions_are_refused_in_one_line() -> None:
    from hpsearch.errors import HpsearchError
    from hpsearch.results.inspect import Trained, feature_maps

    mlp = build(MLP(hidden=(8,)), Info((1, 8, 8)))
    with pytest.raises(HpsearchError, match="no convolution layers: feature maps are the outputs of convolutions"):
        feature_maps(Trained(0, mlp, None, "test"), [0])


def test_attributions_find_the_one_pixel_a_model_looks_at() -> None:
    """A model whose class-1 score is one pixel's value: saliency, guided backprop and integrated
    gradients put all their weight on that pixel; Grad-CAM's map has the image's shape."""
    from types import SimpleNamespace

    import numpy as np

    from hpsearch.data._resident import Tensors
    from hpsearch.results.inspect import Trained, attributions

    pixel = (3, 5)
    conv = nn.Conv2d(1, 1, 1, bias=False)
    head = nn.Linear(64, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.zero_()
        head.weight[1, pixel[0] * 8 + pixel[1]] = 1.0
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), head)
    x = torch.full((2, 1, 8, 8), 200, dtype=torch.uint8)
    val = Tensors(x, torch.tensor([1, 1]), torch.zeros(1), torch.ones(1))
    data = SimpleNamespace(val=val, info=SimpleNamespace(classes=("a", "b")))
    (found,) = attributions(Trained(0, model, data, "test"), [0], ["saliency", "guided-backprop",
                                                                  "integrated-gradients", "grad-cam"], target="b")
    for method in ("saliency", "guided-backprop", "integrated-gradients"):
        m = found.maps[method]
        assert np.unravel_index(int(np.argmax(m)), m.shape) == pixel, method
        assert m[pixel] > 0 and np.count_nonzero(m) == 1, method
    assert found.maps["grad-cam"].shape == (8, 8) and found.target == "b" and found.label == "b"
    assert model[1].inplace  # the model inspected is left as it was (Captum works on a copy)
    from hpsearch.results.inspect import neurons
    (nm,) = neurons(Trained(0, model, data, "test"), [0], 1)
    ((channel, y, x_, activation, m),) = nm.neurons  # a 1×1 convolution: a neuron sees one pixel
    assert channel == 0 and activation > 0 and np.count_nonzero(m) == 1 and m[y, x_] > 0
    with pytest.raises(Exception, match="no method 'shap'"):
        attributions(Trained(0, model, data, "test"), [0], ["shap"])


def test_attributions_of_a_study_without_classes_are_refused_in_one_line() -> None:
    from types import SimpleNamespace

    from hpsearch.errors import HpsearchError
    from hpsearch.results.inspect import Trained, attributions

    masks = SimpleNamespace(val=SimpleNamespace(y=torch.zeros(2, 8, 8)), info=SimpleNamespace(classes=("bg", "fg")))
    with pytest.raises(HpsearchError, match="attributions explain a class score.*--feature-maps shows"):
        attributions(Trained(0, nn.Identity(), masks, "test"), [0], ["saliency"])
