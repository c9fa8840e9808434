"""U-Net on the generated ``shapes`` set: nearest vs bilinear upsampling × ReLU vs ELU × depth.

The course reports' segmentation grid, offline: every cell trained once per seed (3 seeds),
scored by per-image F1 (Dice) of the shape pixels on the validation split. Sized for a 2-core
CPU (1,000 images of 32×32, 8 base filters: about a minute per cell); with a GPU use
``datasets.shapes(n=2000, size=64)``, 16 or 32 filters and more epochs. Compare the cells
with ``hpsearch compare shapes_unet --by upsampling,activation,depth``, then look at the test
split once with ``hpsearch best shapes_unet --retrain``.
"""

import optuna

from hpsearch import OptimConfig, Study, TrialConfig, UNet, datasets, samplers, tasks

GRID = {"upsampling": ["nearest", "bilinear"], "activation": ["relu", "elu"], "depth": [2, 3], "seed": [0, 1, 2]}


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=UNet(depth=trial.suggest_categorical("depth", GRID["depth"]), filters=8,
                   upsampling=trial.suggest_categorical("upsampling", GRID["upsampling"]),
                   activation=trial.suggest_categorical("activation", GRID["activation"])),
        optim=OptimConfig(name="adam", lr=2e-3, scheduler="cosine"),
        batch_size=16,
    )


study = Study(dataset=datasets.shapes(n=1000, size=32, seed=0), space=search_space, task=tasks.segment(),
              metric="val_f1", max_epochs=8, n_trials=24, sampler=samplers.grid(GRID))
