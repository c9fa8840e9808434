"""Model builders, registered by name (timm style): ``create_model("cnn", cfg, info)``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from hpsearch.config import ModelConfig
from hpsearch.data import DatasetInfo

ACTIVATION_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "mish": lambda: nn.Mish(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
}


def block_filters(cfg: ModelConfig) -> list[int]:
    """Channels of each block: the same, doubling, or halving (never below 4)."""
    out = []
    for i in range(cfg.blocks):
        if cfg.organisation == "double":
            out.append(cfg.filters * 2**i)
        elif cfg.organisation == "half":
            out.append(max(4, cfg.filters // 2**i))
        else:
            out.append(cfg.filters)
    return out


def cnn(cfg: ModelConfig, info: DatasetInfo) -> nn.Sequential:
    """Blocks of conv → [BN] → activation → 2×2 max-pool (while the map is ≥ 2 px), then a head.

    Conv layers before BN carry no bias (BN's shift replaces it).
    """
    layers: list[nn.Module] = []
    c, size = info.channels, info.size
    for f in block_filters(cfg):
        layers.append(nn.Conv2d(c, f, cfg.kernel, padding=cfg.kernel // 2, bias=not cfg.batch_norm))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm2d(f))
        layers.append(ACTIVATION_LAYERS[cfg.activation]())
        if size >= 2:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        c = f
    layers.append(nn.Flatten())
    features = c * size * size
    if cfg.dense > 0:
        layers += [nn.Dropout(cfg.dropout), nn.Linear(features, cfg.dense), ACTIVATION_LAYERS[cfg.activation]()]
        features = cfg.dense
    layers += [nn.Dropout(cfg.dropout), nn.Linear(features, info.num_classes)]
    return nn.Sequential(*layers)


MODELS: dict[str, Callable[[ModelConfig, DatasetInfo], nn.Module]] = {"cnn": cnn}


def create_model(name: str, cfg: ModelConfig, info: DatasetInfo) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](cfg, info)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

