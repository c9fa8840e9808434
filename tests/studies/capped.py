"""max_params: the large half of this space is rejected before it trains."""

import optuna

from hpsearch import MLP, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(model=MLP(hidden=(trial.suggest_categorical("units", [8, 512]),)),
                       optim=OptimConfig(name="adam", lr=3e-3))


study = Study(dataset="digits", space=search_space, max_epochs=2, n_trials=6, max_params=2000)
