"""A segment fixture study: a small U-Net on 120 generated 32×32 shapes, scored by per-image F1."""

import optuna

from hpsearch import OptimConfig, Study, TrialConfig, UNet, datasets, tasks


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=UNet(depth=2, filters=4, upsampling=trial.suggest_categorical("upsampling", ["nearest", "bilinear"]),
                   activation=trial.suggest_categorical("activation", ["relu", "elu"])),
        optim=OptimConfig(name="adam", lr=1e-2),
        batch_size=16,
    )


study = Study(dataset=datasets.shapes(n=120, size=32), space=search_space, task=tasks.segment(), metric="val_f1",
              max_epochs=3, n_trials=2)
