"""Fixture: accuracy against parameter count, two objectives searched by NSGA-II."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig, samplers


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=1, filters=trial.suggest_categorical("filters", [4, 8, 16]),
                          dense=trial.suggest_categorical("dense", [0, 32])),
        optim=OptimConfig(name="adam", lr=3e-3),
        batch_size=64,
    )


study = Study(dataset="digits", space=search_space, max_epochs=2, n_trials=5,
              metrics=("val_top1", "params"), sampler=samplers.nsga2(population_size=4))
