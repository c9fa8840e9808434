"""CUDA graph capture of a training step's forward and backward, with an eager fallback.

At batch 64 a CUDA epoch of the reference CNN is kernel-launch and Python overhead, not compute
(issue 19: ~860 steps × 2.5 ms on an H200). ``torch.compile(mode="reduce-overhead")`` records the
forward and its backward (AOTAutograd) as CUDA graphs and replays them, one launch per graph.
The optimizer and the schedule stay eager: they are a few foreach kernels per step and change the
learning rate as a Python float, which a graph would freeze.

**Untested on a GPU.** No GPU was lent to the session that wrote this, so it is opt-in
(``HPSEARCH_CAPTURE=1``) and off by default; ``tests/train/test_gpu.py`` checks it against eager on a
machine with CUDA, and ``benchmarks/gpu.py`` measures it. On a CPU it never captures (graphs are
a CUDA feature; ``torch.compile``'s CPU code measured no faster here, docs/benchmarks.md §1).

A model that cannot be captured (data-dependent control flow, an op the compiler rejects) fails
on its first call: that call is rerun eagerly and the step stays eager from then on, with the
reason kept in :attr:`Captured.reason`. Out-of-memory errors are never swallowed: they propagate,
so the worker can re-queue the trial (see :mod:`hpsearch.run.workers`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Captured"]

Compiler = Callable[[Callable[..., Any]], Callable[..., Any]]


def _reduce_overhead(fn: Callable[..., Any]) -> Callable[..., Any]:
    return torch.compile(fn, mode="reduce-overhead", dynamic=False)


class Captured:
    """``fn`` (a module's forward, or the fused group's) run as captured graphs when ``enabled``.

    ``compiler`` is how ``fn`` is captured (``torch.compile`` with ``reduce-overhead`` by
    default); the first call is the try: if it raises (other than out of memory), the call is
    rerun eagerly and every later call is eager.
    """

    def __init__(self, fn: Callable[..., Any], enabled: bool, compiler: Compiler = _reduce_overhead) -> None:
        self.eager = fn
        self.compiled: Callable[..., Any] | None = compiler(fn) if enabled else None
        self.tried = False
        self.reason: str | None = None  # why capture was given up (None: capturing, or never asked)

    @property
    def capturing(self) -> bool:
        return self.compiled is not None

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args)
        if not self.tried:
            self.tried = True
            try:
                return self._replay(*args)
            except torch.OutOfMemoryError:
                raise
            except Exception as err:  # noqa: BLE001 - anything the compiler or capture rejects: go eager
                self.compiled = None
                self.reason = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
                return self.eager(*args)
        return self._replay(*args)

    def _replay(self, *args: Any) -> Any:
        assert self.compiled is not None
        mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
        if mark is not None:  # a new training step: outputs of the previous replay may be overwritten
            mark()
        return self.compiled(*args)
