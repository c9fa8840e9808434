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
from hpsearch.models import count_parameters, create_model
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
        config = self.study.space(trial)
        seed = trial_seed(self.settings.seed, trial.number)
        history: list[EpochMetrics] = []
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("device", str(self.device))
        trial.set_user_attr("threads", torch.get_num_threads())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("config", config.to_dict())
        with torch.device("meta"):  # count parameters without allocating them
            trial.set_user_attr("n_params", count_parameters(create_model("cnn", config.model, self.data.info)))

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


def _record_curves(trial: optuna.Trial, history: list[EpochMetrics]) -> None:
    if not history:
        return
    trial.set_user_attr("curves", curves_of(history))
    trial.set_user_attr("epochs", len(history))
