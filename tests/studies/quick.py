"""Fixture study with sub-second trials: for hammering the database with many workers."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=1, filters=4, dense=0, batch_norm=False),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-1, log=True)),
        batch_size=trial.suggest_categorical("batch_size", [64, 128]),
    )


study = Study(dataset="digits", space=search_space, max_epochs=2, n_trials=200, train_subset=300)
