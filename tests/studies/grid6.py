"""Fixture: the EMNIST report's 2 × 3 grid on digits — width × named optimizer settings."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig, samplers

OPTIMIZERS = {"adam": OptimConfig(name="adam", lr=1e-3), "sgd_hi": OptimConfig(name="sgd", lr=0.1),
              "sgd_lo": OptimConfig(name="sgd", lr=0.01)}
GRID = {"hidden": [8, 16], "opt": list(OPTIMIZERS)}


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=1, filters=trial.suggest_categorical("hidden", GRID["hidden"]), dense=0),
        optim=OPTIMIZERS[trial.suggest_categorical("opt", GRID["opt"])],
        batch_size=64,
    )


study = Study(dataset="digits", space=search_space, max_epochs=4, sampler=samplers.grid(GRID))
