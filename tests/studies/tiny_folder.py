"""Fixture: the image folder named by $HPSEARCH_FOLDER, resized to 12×12, one-block CNNs, 2 epochs."""

import os

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig, datasets


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=1, filters=trial.suggest_categorical("filters", [4, 8]), dense=0),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 3e-3, 3e-2, log=True)),
        batch_size=16,
    )


study = Study(dataset=datasets.image_folder(os.environ["HPSEARCH_FOLDER"], size=(12, 12)), space=search_space,
              max_epochs=2, n_trials=2, val_fraction=0.25)
