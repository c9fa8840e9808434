"""A study whose model spec lives in a helper module beside it (``_blocks.py``)."""

import optuna
from _blocks import TwoLayer

from hpsearch import OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(model=TwoLayer(hidden=trial.suggest_categorical("hidden", [16, 32])),
                       optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-2, log=True)))


study = Study(dataset="digits", space=search_space, max_epochs=2, n_trials=2)
