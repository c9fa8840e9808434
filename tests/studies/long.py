"""Fixture study whose one trial takes far longer than a test waits: for --deadline."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(model=ModelConfig(blocks=1, filters=8, dense=0),
                       optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-2, log=True)),
                       batch_size=32)


study = Study(dataset="digits", space=search_space, max_epochs=2000, n_trials=3)
