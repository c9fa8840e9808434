"""Fixture: an ablation ladder whose rungs train their own epochs, with unequal repeats (listed cells)."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig, samplers

EPOCHS = {"short": 2, "long": 4}


def search_space(trial: optuna.Trial) -> TrialConfig:
    variant = trial.suggest_categorical("variant", list(EPOCHS))
    return TrialConfig(model=ModelConfig(blocks=1, filters=8, dense=0), optim=OptimConfig(name="adam", lr=3e-3),
                       batch_size=64, epochs=EPOCHS[variant])


study = Study(dataset="digits", space=search_space, max_epochs=4,
              sampler=samplers.grid([{"variant": "short", "seed": 0}, {"variant": "short", "seed": 1},
                                     {"variant": "short", "seed": 2}, {"variant": "long", "seed": 0}]))
