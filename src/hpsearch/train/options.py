"""The training speed-ups, resolved once at the edge and handed down as one value.

``HPSEARCH_FUSE`` and ``HPSEARCH_CAPTURE`` are read here, by :meth:`Speedups.from_env`, which
the CLI calls before any worker starts or any model trains (so a bad value is one line, not a
failed trial per worker). The supervisor hands the result to every worker, the worker to the
objective, the objective to the trainer: nothing below the CLI reads the environment, so a run
started from Python (``Speedups()`` by default) does what its arguments say. Kept free of torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpsearch.errors import HpsearchError

if TYPE_CHECKING:
    import torch

FUSE_ENV = "HPSEARCH_FUSE"  # same-shaped runs trained as one model (hpsearch.train.fused)
CAPTURE_ENV = "HPSEARCH_CAPTURE"  # CUDA graph capture of the training step (hpsearch.train.capture)


def _flag(name: str, allowed_unset: tuple[str, ...], meaning: str) -> bool | None:
    value = os.environ.get(name, "").strip()
    if value in allowed_unset:
        return None
    if value in ("0", "1"):
        return value == "1"
    raise HpsearchError(f"{name}={value!r}: {meaning}")


@dataclass(frozen=True)
class Speedups:
    """Which speed-ups training uses. Plain data: it pickles into a spawned worker."""

    fuse: bool | None = None  # True: fuse wherever runs can fuse; False: never; None: on CUDA only
    capture: bool = False  # capture CUDA training steps in graphs (never on a CPU)

    def fuses(self, device: torch.device) -> bool:
        """Fuse on ``device``? By default on CUDA, not on a CPU: on this project's 2-core machine every
        fused case measured slower than the same runs one by one (docs/benchmarks.md §5,
        ``benchmarks/fused.py``); a CPU's cores are already busy with one model's convolutions.
        On CUDA five models fused ran in the time of one (issue 19, an H200)."""
        return device.type == "cuda" if self.fuse is None else self.fuse

    def captures(self, device: torch.device) -> bool:
        return self.capture and device.type == "cuda"

    @classmethod
    def from_env(cls) -> Speedups:
        """The switches as the user set them, or one clear error for a bad value."""
        fuse = _flag(FUSE_ENV, ("", "auto"), "use 1 (fuse same-shaped runs), 0 (never) or leave it unset "
                                             "(fuse on CUDA, not on a CPU)")
        capture = _flag(CAPTURE_ENV, ("",), "use 1 (capture CUDA training steps in graphs) or 0 (eager, the default)")
        return cls(fuse=fuse, capture=bool(capture))
