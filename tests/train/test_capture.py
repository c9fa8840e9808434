"""The capture wrapper's fallback on the CPU: no GPU needed to check that a step the compiler
rejects is rerun eagerly, that out-of-memory is never swallowed, and that a CPU never captures."""

from __future__ import annotations

import pytest
import torch

from hpsearch.errors import HpsearchError
from hpsearch.train.capture import Captured
from hpsearch.train.options import CAPTURE_ENV, Speedups


def test_a_step_the_compiler_rejects_runs_eagerly_from_then_on() -> None:
    calls: list[str] = []

    def rejecting(fn):  # noqa: ANN001, ANN202 - a compiler whose result fails on its first call
        def compiled(*args):  # noqa: ANN002, ANN202
            calls.append("compiled")
            raise RuntimeError("cannot capture: data-dependent control flow\nmore detail")
        return compiled

    def step(x: torch.Tensor) -> torch.Tensor:
        calls.append("eager")
        return x * 2

    run = Captured(step, enabled=True, compiler=rejecting)
    assert run.capturing
    assert run(torch.ones(2)).tolist() == [2.0, 2.0]
    assert run(torch.ones(2)).tolist() == [2.0, 2.0]
    assert calls == ["compiled", "eager", "eager"]
    assert not run.capturing and run.reason == "RuntimeError: cannot capture: data-dependent control flow"


def test_out_of_memory_is_never_swallowed() -> None:
    def oom(fn):  # noqa: ANN001, ANN202
        def compiled(*args):  # noqa: ANN002, ANN202
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return compiled

    run = Captured(lambda x: x, enabled=True, compiler=oom)
    with pytest.raises(torch.OutOfMemoryError):
        run(torch.ones(1))


def test_a_cpu_never_captures_and_a_bad_switch_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CAPTURE_ENV, "1")
    on = Speedups.from_env()
    assert not on.captures(torch.device("cpu")) and on.captures(torch.device("cuda"))
    monkeypatch.setenv(CAPTURE_ENV, "0")
    assert not Speedups.from_env().captures(torch.device("cuda"))
    monkeypatch.setenv(CAPTURE_ENV, "on")
    with pytest.raises(HpsearchError, match="HPSEARCH_CAPTURE='on'"):
        Speedups.from_env()
