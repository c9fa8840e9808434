"""Layers and initialisation shared by the built-in specs (imported only when a model is built)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

ACTIVATION_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "mish": lambda: nn.Mish(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

_NONLINEARITY: dict[str, Literal["relu", "leaky_relu", "tanh", "sigmoid"]] = {
    "relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh", "sigmoid": "sigmoid"}


def activation(name: str) -> nn.Module:
    return ACTIVATION_LAYERS[name]()


@torch.no_grad()
def initialise(model: nn.Module, scheme: str, activation_name: str = "relu") -> None:
    """Re-initialise conv and linear weights with ``scheme``; biases to zero, norms to (1, 0).

    ``default`` keeps PyTorch's per-layer initialisation. Kaiming uses the activation's gain
    (ReLU's for the ones PyTorch has no gain for). Parameters on the meta device are skipped:
    counting parameters and FLOPs builds models without memory.
    """
    if scheme == "default":
        return
    nonlinearity = _NONLINEARITY.get(activation_name, "relu")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if m.weight.is_meta:
                continue
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif scheme == "orthogonal":
                nn.init.orthogonal_(m.weight)
            else:
                raise ValueError(f"unknown init {scheme!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
            if not m.weight.is_meta:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
