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


@dataclass(frozen=True)
class Layer:
    """One leaf module of a built model, as a layer table shows it."""

    name: str  # its path in the model ("3", "features.0.conv1")
    kind: str  # its class ("Conv2d")
    output: tuple[int, ...] | None  # the output's shape for one image (batch dimension kept: 1); None: not a tensor
    params: int  # its own parameters
    trainable: int  # those trainable in the first epoch (a freeze strategy's)
    flops: int  # of its forward pass on one image (torch.utils.flop_counter)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "type": self.kind, "output": list(self.output) if self.output else None,
                "params": self.params, "trainable": self.trainable, "frozen": self.params - self.trainable,
                "flops": self.flops}


def layers(spec: ModelSpec, info: ModelInfo) -> list[Layer]:
    """Every leaf module (and any module with parameters of its own) of ``spec`` built for ``info``, in the order the forward pass first runs it:
    output shape from a forward hook, parameters counted, FLOPs from ``torch.utils.flop_counter``'s
    per-module counts. Built as :func:`measure` builds (a forked RNG, the first epoch's freeze), so
    the rows add up to its totals. A leaf that the forward pass never runs (a head a task ignores)
    is listed last, with no output."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model = build(spec, info)
        spec.on_epoch(model, 1)
        model.eval()
        # leaves, and any module holding parameters of its own besides children: the rows add up
        leaves = {name: m for name, m in model.named_modules()
                  if not list(m.children()) or list(m.parameters(recurse=False))}
        seen: dict[str, tuple[int, ...] | None] = {}

        def hook(name: str):  # noqa: ANN202 - a forward hook's closure
            def record(_m: nn.Module, _inputs: object, output: object) -> None:
                if name not in seen:  # a module run twice (a shared block) keeps its first output
                    seen[name] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            return record
        handles = [m.register_forward_hook(hook(name)) for name, m in leaves.items()]
        try:
            with FlopCounterMode(display=False) as counter:
                model(torch.zeros(1, *info.shape))
        finally:
            for h in handles:
                h.remove()
    root = type(model).__name__
    counts = counter.get_flop_counts()  # per module, its children's included

    def inclusive(name: str) -> int:
        return int(sum(counts.get(f"{root}.{name}" if name else root, {}).values()))
    order = [*seen, *(n for n in leaves if n not in seen)]
    out = []
    for name in order:
        m = leaves[name]
        own = list(m.parameters(recurse=False))
        # its own: what it ran less what its children ran (they have rows of their own)
        flops = inclusive(name) - sum(inclusive(f"{name}.{c}" if name else c) for c, _ in m.named_children())
        out.append(Layer(name or root, type(m).__name__, seen.get(name), sum(p.numel() for p in own),
                         sum(p.numel() for p in own if p.requires_grad), int(flops)))
    return out
