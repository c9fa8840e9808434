"""Parameters and FLOPs of a spec, measured on the meta device (no memory, no weights read)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hpsearch.models._spec import ModelInfo, ModelSpec, build


@dataclass(frozen=True)
class Size:
    params: int  # all parameters
    trainable: int  # those a freeze strategy leaves trainable in the first epoch
    flops: int  # of one forward pass of one image (multiply-add = 2 FLOPs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def measure(spec: ModelSpec, info: ModelInfo) -> Size:
    """Build ``spec`` on the meta device and count; FLOPs by ``torch.utils.flop_counter``.

    A builder that reads its own parameters while building (RegNet's init) cannot run on
    the meta device; that one is built in memory, once.
    """
    try:
        return _measure(spec, info, "meta")
    except NotImplementedError:
        return _measure(spec, info, "cpu")


def _measure(spec: ModelSpec, info: ModelInfo, device: str) -> Size:
    with torch.device(device):
        model = build(spec, info)
        spec.on_epoch(model, 1)  # the freeze state of the first epoch (weights are not loaded)
        x = torch.empty(1, *info.shape) if device == "meta" else torch.zeros(1, *info.shape)
        model.eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Size(count_parameters(model), trainable, int(counter.get_total_flops()))
