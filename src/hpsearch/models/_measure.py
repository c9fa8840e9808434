"""Parameters and FLOPs of a spec, counted on a throwaway copy built on the CPU (no weights read).

Why not the meta device: its first convolution costs ~3 s of one-time set-up per process
(measured: 2.9 s here), which every worker and every `hpsearch run` paid; a CPU build of the
course reports' models takes milliseconds (ResNet-50: about half a second).
"""

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
    """Build ``spec`` and count; FLOPs of one image by ``torch.utils.flop_counter``.

    The copy is built from a forked RNG, so measuring never changes what a seeded run draws.
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model = build(spec, info)
        spec.on_epoch(model, 1)  # the freeze state of the first epoch (weights are not loaded)
        model.eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *info.shape))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Size(count_parameters(model), trainable, int(counter.get_total_flops()))
