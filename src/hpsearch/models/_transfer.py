"""Reusing a trained network: a new head, input adaptation, freezing, discriminative lr.

Shared by the ``torchvision`` backbones and ``encoder`` (a trunk from one of our own
checkpoints). The network is wrapped in :class:`Transferred`, which knows its *stages* (the
trunk cut into the blocks one freezes, bottom first) and its *head* (the block holding the
new classifier). Freeze strategies:

- ``none``: everything trains;
- ``head_only``: every stage frozen, only the head trains;
- ``first_k``: the first ``freeze_k`` stages frozen;
- ``gradual``: all stages frozen at first, then one more unfrozen from the top every
  ``unfreeze_every`` epochs (ULMFiT's gradual unfreezing).

A frozen stage keeps ``requires_grad=False`` *and* its BatchNorm layers in eval mode, so
neither its weights nor its running statistics move. Every parameter is in the optimizer
from the start (frozen ones have no gradient, so optimizers skip them, weight decay too),
which is what lets ``gradual`` unfreeze without rebuilding the optimizer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.errors import ModelError


class Transferred(nn.Module):
    """``net`` with its classifier replaced by a new head, resizing inputs it cannot take as they are.

    ``min_size``: images whose shorter side is smaller are scaled up (aspect kept);
    ``exact_size``: every image is resized to that size (ViT and MaxViT take one size only).
    """

    def __init__(self, net: nn.Module, num_classes: int, min_size: int = 0,
                 exact_size: tuple[int, int] | None = None, hidden: tuple[int, ...] = (),
                 activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.min_size = min_size
        self.exact_size = exact_size
        parent, attr, old = _classifier(net)
        if isinstance(old, nn.Linear) and hidden:  # "replace the last layer with FC512 → GELU → the classes"
            from hpsearch.models._layers import activation as act

            layers: list[nn.Module] = []
            width = old.in_features
            for h in hidden:
                layers += [nn.Linear(width, h), act(activation), *([nn.Dropout(dropout)] if dropout else [])]
                width = h
            setattr(parent, attr, nn.Sequential(*layers, nn.Linear(width, num_classes)))
        elif isinstance(old, nn.Linear):
            setattr(parent, attr, nn.Linear(old.in_features, num_classes))
        elif hidden:
            raise ModelError(f"{type(net).__name__} ends in a 1×1 convolution, not a dense layer: head_hidden "
                             "applies to networks whose classifier is a Linear layer")
        else:  # SqueezeNet's 1×1 convolution classifier
            setattr(parent, attr, nn.Conv2d(old.in_channels, num_classes, old.kernel_size))  # type: ignore[arg-type]
        self.head_name = _top_level_name(net, parent, attr)
        self._stages = stages_of(net, self.head_name)  # plain list: not registered twice

    @property
    def head(self) -> nn.Module:
        return getattr(self.net, self.head_name)

    @property
    def stages(self) -> list[nn.Module]:
        return list(self._stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.exact_size is not None and tuple(x.shape[-2:]) != self.exact_size:
            x = F.interpolate(x, size=self.exact_size, mode="bilinear", align_corners=False)
        elif self.min_size and min(x.shape[-2:]) < self.min_size:
            h, w = x.shape[-2:]
            scale = self.min_size / min(h, w)
            x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
        return self.net(x)


def _classifier(net: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """The layer that produces the class scores: the last Linear, else a last 1×1 convolution
    to 1000 channels (SqueezeNet's ImageNet classifier)."""
    found = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            found = name
    if found is None:
        for name, module in net.named_modules():
            if isinstance(module, nn.Conv2d) and module.out_channels == 1000 and module.kernel_size == (1, 1):
                found = name
    if found is None:
        raise ValueError(f"{type(net).__name__} has no Linear layer to replace with a new head")
    parent_name, _, attr = found.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    return parent, attr, getattr(parent, attr)


def _top_level_name(net: nn.Module, parent: nn.Module, attr: str) -> str:
    if parent is net:
        return attr
    for name, child in net.named_children():
        if any(m is parent for m in child.modules()):
            return name
    raise AssertionError("head not found among the top-level children")


def stages_of(net: nn.Module, head_name: str) -> list[nn.Module]:
    """The trunk cut into freezable stages, bottom first.

    A new stage starts at every top-level child that is a convolution, a linear layer or a
    container with parameters; norms and parameter-free layers join the stage before them
    (ResNet: stem = conv1 + bn1, then layer1…layer4). A trunk that is one big container
    (MobileNet's and EfficientNet's ``features``) is cut into that container's children.
    """
    children = [c for name, c in net.named_children() if name != head_name]
    if len([c for c in children if _has_params(c)]) == 1:
        big = next(c for c in children if _has_params(c))
        if len(list(big.children())) > 1:
            children = list(big.children())
    stages: list[list[nn.Module]] = []
    for child in children:
        starts = isinstance(child, (nn.Conv2d, nn.Linear)) or (_has_params(child) and len(list(child.children())) > 0)
        if starts or not stages:
            stages.append([child])
        else:
            stages[-1].append(child)
    return [nn.ModuleList(s) if len(s) > 1 else s[0] for s in stages if any(_has_params(m) for m in s)]


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def frozen_stages(freeze: str, n_stages: int, epoch: int, freeze_k: int, unfreeze_every: int) -> int:
    """How many stages (from the bottom) are frozen during ``epoch`` (1-based)."""
    if freeze == "none":
        return 0
    if freeze == "head_only":
        return n_stages
    if freeze == "first_k":
        return min(freeze_k, n_stages)
    return max(0, n_stages - (epoch - 1) // max(1, unfreeze_every))  # gradual


def apply_freeze(model: Transferred, n_frozen: int) -> None:
    """Freeze the first ``n_frozen`` stages (weights and BN statistics), unfreeze the rest."""
    for i, stage in enumerate(model.stages):
        frozen = i < n_frozen
        for p in stage.parameters():
            p.requires_grad_(not frozen)
        for m in stage.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and frozen:
                m.eval()


def param_groups(model: Transferred, lr: float, backbone_lr: float) -> list[dict[str, Any]]:
    """The head at the study's lr, the trunk at ``backbone_lr`` × that (discriminative lr)."""
    head = {id(p) for p in model.head.parameters()}
    trunk = [p for p in model.parameters() if id(p) not in head]
    groups = [{"params": list(model.head.parameters()), "lr": lr}]
    if trunk:
        groups.insert(0, {"params": trunk, "lr": lr * backbone_lr})
    return groups


@torch.no_grad()
def load_trunk(model: Transferred, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every trunk weight of ``state`` (keys of the un-wrapped network); the head stays new.

    A first convolution trained on RGB is adapted to grey inputs by summing its weights over
    the colour channels (timm's ``adapt_input_conv``), so no image is copied three times.
    """
    own = model.net.state_dict()
    head_prefix = model.head_name + "."
    missing = [k for k in own if not k.startswith(head_prefix) and k not in state]
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} trunk weights, e.g. {missing[0]!r}; "
                         "is it a state_dict of the same architecture?")
    for key, target in own.items():
        if key.startswith(head_prefix):
            continue
        value = state[key]
        if value.shape != target.shape and value.dim() == 4 and value.shape[0] == target.shape[0] \
                and value.shape[2:] == target.shape[2:]:
            value = _adapt_input_conv(value, target.shape[1])
        if value.shape != target.shape:
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, the model needs {tuple(target.shape)}")
        target.copy_(value)


def _adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = -(-channels // weight.shape[1])
    return weight.repeat(1, repeat, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def adapt_first_conv(net: nn.Module, channels: int) -> None:
    """Replace the first convolution by one taking ``channels`` inputs (same kernel and stride)."""
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.in_channels == channels:
                return
            parent_name, _, attr = name.rpartition(".")
            parent = net.get_submodule(parent_name) if parent_name else net
            setattr(parent, attr, nn.Conv2d(channels, m.out_channels, m.kernel_size, m.stride, m.padding,  # type: ignore[arg-type]
                                            m.dilation, m.groups, m.bias is not None,  # type: ignore[arg-type]
                                            m.padding_mode))
            return
