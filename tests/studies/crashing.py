"""Fixture study whose every trial raises: the run must stop, not loop."""

import optuna

from hpsearch import Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
    raise RuntimeError("boom: this space always fails")


study = Study(dataset="digits", space=search_space, max_epochs=1, n_trials=10)
