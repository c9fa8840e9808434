"""CIFAR-10: the report's regularisation ladder, each rung over five seeds, as one grid study.

Baseline → + weight decay → + dropout → + augmentation → + batch norm, each rung adding one
thing to the one before. The rung is a categorical grid dimension the space maps to a config;
``seed`` is the other dimension and sets each trial's training seed, so the 25 trials are
independent and run in parallel. Then::

    hpsearch compare cifar_ladder --by rung      # mean ± std over seeds, on validation
    hpsearch best cifar_ladder --retrain         # the chosen rung, on the test split once

A grid is never pruned (every rung trains to its last epoch, or the comparison has holes).
"""

import optuna

from hpsearch import CNN, OptimConfig, Study, TrialConfig, samplers

RUNGS = ["baseline", "+weight_decay", "+dropout", "+augment", "+batch_norm"]


def search_space(trial: optuna.Trial) -> TrialConfig:
    rung = RUNGS.index(trial.suggest_categorical("rung", RUNGS))
    return TrialConfig(
        model=CNN(blocks=3, filters=32, organisation="double", kernel=3, batch_norm=rung >= 4,
                  dropout=0.3 if rung >= 2 else 0.0, dense=128),
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=5e-4 if rung >= 1 else 0.0),
        batch_size=64,
        augment="flip_crop" if rung >= 3 else "none",
    )


study = Study(dataset="cifar10", space=search_space, max_epochs=15, val_fraction=0.1,
              sampler=samplers.grid({"rung": RUNGS, "seed": [0, 1, 2, 3, 4]}),
              description="regularisation ladder x 5 seeds")
