"""Fixture study on the MNIST on-disk format (tests generate a tiny fake MNIST root)."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=2, filters=8, dense=0),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-2, log=True)),
        batch_size=32,
    )


study = Study(dataset="mnist", space=search_space, max_epochs=2, n_trials=2, val_fraction=0.25)
