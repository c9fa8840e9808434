"""Fixture: every sampled config trained with 2 seeds; its score is their mean (dropout on, so
each seed's stream of dropout masks matters)."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=1, filters=trial.suggest_categorical("filters", [8, 16]), dense=16, dropout=0.3),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-2, log=True)),
        batch_size=64,
    )


study = Study(dataset="digits", space=search_space, max_epochs=3, n_trials=3, repeats=2)
