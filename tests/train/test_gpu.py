"""CUDA-only checks of issue 19's GPU paths: graph capture and fused training against eager.

Every test here skips cleanly without a CUDA device (CI and most development machines). On a
GPU, results differ from eager by float rounding only: cuDNN may pick other algorithms in a
graph, and a fused model's grouped convolutions add in another order (see tests/train/test_fused.py
for the tolerance's reasoning; GPU kernels are not bit-deterministic, so it is looser here).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from hpsearch import CNN, OptimConfig, TrialConfig
from hpsearch.data import DataSpec, SearchData, load_search_data
from hpsearch.train.fused import fit_together
from hpsearch.train.loop import FitResult, Training, fit
from hpsearch.train.options import Speedups

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TOL = 1e-2  # relative and absolute, on losses; accuracies within 1 %
CONFIGS = [TrialConfig(CNN(blocks=2, filters=16, dense=32), OptimConfig(name="adam", lr=lr, weight_decay=wd), 64)
           for lr, wd in [(3e-3, 0.0), (1e-3, 1e-4), (5e-3, 0.0)]]


@pytest.fixture(scope="module")
def digits_cuda() -> SearchData:
    return load_search_data(DataSpec("digits"), Path("."), torch.device("cuda"))


def close(a: FitResult, b: FitResult) -> bool:
    ca, cb = a.curves(), b.curves()
    for key in ca:
        if key in ("seconds", "train_seconds"):
            continue
        for x, y in zip(ca[key], cb[key]):
            if x is None or y is None:
                if x is not y:
                    return False
            elif not math.isclose(x, y, rel_tol=TOL, abs_tol=TOL):
                return False
    return True


def test_a_captured_training_step_equals_eager(digits_cuda: SearchData) -> None:
    cuda = torch.device("cuda")
    eager = fit(CONFIGS[0], digits_cuda, epochs=3, seed=1, device=cuda)
    run = Training(CONFIGS[0], digits_cuda, epochs=3, seed=1, device=cuda, speedups=Speedups(capture=True))
    for _ in range(3):
        run.epoch()
    assert run.forward.capturing, f"capture fell back to eager: {run.forward.reason}"
    assert close(run.result(), eager)


def test_fused_runs_on_cuda_equal_separate_runs(digits_cuda: SearchData) -> None:
    cuda = torch.device("cuda")
    separate = [fit(c, digits_cuda, epochs=3, seed=s, device=cuda) for c, s in zip(CONFIGS, [1, 2, 3])]
    fused = fit_together(CONFIGS, digits_cuda, epochs=3, seeds=[1, 2, 3], device=cuda, speedups=Speedups(fuse=True))
    assert all(r.fused for r in fused)
    for a, b in zip(fused, separate):
        assert close(a, b)


def test_captured_fused_runs_equal_eager_fused_runs(digits_cuda: SearchData) -> None:
    cuda = torch.device("cuda")
    eager = fit_together(CONFIGS, digits_cuda, epochs=3, seeds=[1, 2, 3], device=cuda, speedups=Speedups(fuse=True))
    captured = fit_together(CONFIGS, digits_cuda, epochs=3, seeds=[1, 2, 3], device=cuda,
                            speedups=Speedups(fuse=True, capture=True))
    for a, b in zip(captured, eager):
        assert close(a, b)


def test_out_of_memory_on_the_card_is_the_class_the_workers_catch() -> None:
    """What hpsearch.run.workers re-queues on: CUDA's OOM error is torch.OutOfMemoryError."""
    with pytest.raises(torch.OutOfMemoryError):
        torch.empty(1 << 50, dtype=torch.uint8, device="cuda")
