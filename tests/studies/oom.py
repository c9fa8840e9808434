"""Fixture study: a model whose forward raises ``torch.OutOfMemoryError`` (CUDA's OOM class), so
the workers' handling is tested on a CPU.

As study ``oom`` (2 workers): trial 0 waits until a second trial is RUNNING, then runs out of
memory beside it (its parameters must be re-queued), and its partner waits until trial 0 is no
longer RUNNING before it trains, so trial 0 really had a co-tenant when it failed (states read
from the storage, not timed). Any later trial trains normally. As study ``oom_alone`` (1 worker)
every trial runs out of memory with no co-tenant: it does not fit even alone. As study
``oom_pack`` (1 worker, ``--trials-per-worker 2``) trials 0 and 1, the worker's first pack, run out
of memory together; the re-queued copies fit.
"""

import time
from dataclasses import dataclass

import optuna
import torch
from torch import nn

from hpsearch import ModelSpec, OptimConfig, Study, TrialConfig, register_model

WAIT_S = 120.0  # at most, polling the storage for the other trial's state


class _OutOfMemory(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (fixture)")


@register_model("oom_fixture")
@dataclass(frozen=True)
class OomFixture(ModelSpec):
    runs_out: bool = False

    def build(self, info):  # noqa: ANN001, ANN201
        c, h, w = info.shape
        layers = [nn.Flatten(), nn.Linear(c * h * w, info.num_classes)]
        return nn.Sequential(*layers, _OutOfMemory()) if self.runs_out else nn.Sequential(*layers)


def _wait(trial: optuna.Trial, done) -> None:  # noqa: ANN001 - done(running trial numbers) -> bool
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        running = [t.number for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]
        if done(running):
            return
        time.sleep(0.2)  # polling the storage for the other trial's state, not a timed wait


def search_space(trial: optuna.Trial) -> TrialConfig:
    lr = trial.suggest_float("lr", 1e-3, 1e-2, log=True)
    name = trial.study.study_name
    runs_out = name == "oom_alone" or (name == "oom_pack" and trial.number < 2)
    if name == "oom" and trial.number == 0:
        _wait(trial, lambda running: len(running) >= 2)
        runs_out = True
    elif name == "oom" and trial.number == 1:
        _wait(trial, lambda running: 0 not in running)
    return TrialConfig(model=OomFixture(runs_out=runs_out), optim=OptimConfig(name="adam", lr=lr), batch_size=64)


study = Study(dataset="digits", space=search_space, max_epochs=1, n_trials=2, train_subset=300)
