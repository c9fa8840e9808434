"""The bridge between an Optuna trial and the plain trainer.

Turns a trial into a config (via the study's space), trains it, reports the study metric to
Optuna after every epoch, prunes when the pruner says so, and records the evidence each
trial carries as user attributes: curves, parameter count, seconds, device and seed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch

from hpsearch.data import SearchData
from hpsearch.errors import InfeasibleModel
from hpsearch.models import Size, measure
from hpsearch.samplers import SEED_PARAM
from hpsearch.seeds import trial_seed
from hpsearch.study import StoredSettings, Study
from hpsearch.train import Diverged, EpochMetrics, curves_of, fit

EpochHook = Callable[[int, EpochMetrics], None]  # (trial number, metrics)


@dataclass
class Objective:
    study: Study
    settings: StoredSettings
    data: SearchData
    device: torch.device
    on_epoch: EpochHook | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        seeds = (self.settings.sampler.dimensions or {}).get(SEED_PARAM)
        # a grid's seed dimension is the training seed itself (asked first, so it is a recorded param)
        seed = int(trial.suggest_categorical(SEED_PARAM, seeds)) if seeds else trial_seed(self.settings.seed,
                                                                                          trial.number)
        config = self.study.space(trial)
        history: list[EpochMetrics] = []
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("device", str(self.device))
        trial.set_user_attr("threads", torch.get_num_threads())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("model", config.model.name)
        try:
            size = measure(config.model, self.data.info)  # a throwaway CPU copy, no weights read
        except InfeasibleModel as err:
            trial.set_user_attr("rejected", str(err))
            raise optuna.TrialPruned(f"rejected before training: {err}") from None
        trial.set_user_attr("n_params", size.params)
        trial.set_user_attr("n_trainable", size.trainable)
        trial.set_user_attr("flops", size.flops)
        too_big = _over_limit(size, self.settings)
        if too_big:
            trial.set_user_attr("rejected", too_big)
            raise optuna.TrialPruned(f"rejected before training: {too_big}")

        def report(m: EpochMetrics) -> None:
            history.append(m)
            value = getattr(m, self.settings.metric)
            trial.report(value, m.epoch)
            if self.on_epoch is not None:
                self.on_epoch(trial.number, m)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {m.epoch}")

        try:
            result = fit(config, self.data, epochs=self.settings.max_epochs, seed=seed,
                         device=self.device, report=report)
        except Diverged as err:
            trial.set_user_attr("diverged_at_epoch", err.epoch)
            raise optuna.TrialPruned(str(err)) from None
        finally:
            _record_curves(trial, history)
        trial.set_user_attr("seconds", round(result.seconds, 3))
        return float(getattr(history[-1], self.settings.metric))


def _over_limit(size: Size, settings: StoredSettings) -> str | None:
    """Why a config breaks the study's size limits, or None. Such a trial is pruned before any
    training step: it counts toward the budget (the budget counts configs tried, and a space
    mostly over the limit must still end), costs no training, and TPE learns to avoid it."""
    if settings.max_params is not None and size.params > settings.max_params:
        return f"{size.params:,} parameters > max_params {settings.max_params:,}"
    if settings.max_flops is not None and size.flops > settings.max_flops:
        return f"{size.flops:,} FLOPs > max_flops {settings.max_flops:,}"
    return None


def _record_curves(trial: optuna.Trial, history: list[EpochMetrics]) -> None:
    if not history:
        return
    trial.set_user_attr("curves", curves_of(history))
    trial.set_user_attr("epochs", len(history))
