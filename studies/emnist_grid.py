"""EMNIST-47: the report's 2 × 3 grid — hidden width H ∈ {32, 64} × three optimizers — × 5 seeds.

EMNIST "balanced" (47 classes: digits, upper-case letters and the lower-case ones that do not
look like their capitals; 112,800 training and 18,800 test images, 28×28) read from
torchvision's layout under ``--data-root`` (``EMNIST/raw/emnist-balanced-*-ubyte``), upright.
The network is the report's: two conv blocks of H filters and a dense layer of 2H units. The
optimizers are the report's three named settings, a categorical dimension the space maps to
configs. It is an exhaustive grid: each of the 30 cells (6 configurations × 5 seeds) runs exactly
once across all workers and machines, and ``hpsearch compare emnist_grid --by hidden,opt`` gives
the report's table with mean ± std over the seeds.

No flips among the augmentations: a mirrored 'b' is a 'd'.
"""

import optuna

from hpsearch import CNN, OptimConfig, Study, TrialConfig, datasets, samplers

OPTIMIZERS = {
    "adam_1e-3": OptimConfig(name="adam", lr=1e-3),
    "sgd_0.1": OptimConfig(name="sgd", lr=0.1, momentum=0.9),
    "sgd_0.01": OptimConfig(name="sgd", lr=0.01, momentum=0.9),
}
GRID = {"hidden": [32, 64], "opt": list(OPTIMIZERS), "seed": [0, 1, 2, 3, 4]}


def search_space(trial: optuna.Trial) -> TrialConfig:
    hidden = trial.suggest_categorical("hidden", GRID["hidden"])
    opt = trial.suggest_categorical("opt", GRID["opt"])
    return TrialConfig(
        model=CNN(blocks=2, filters=hidden, organisation="same", batch_norm=True, dense=2 * hidden),
        optim=OPTIMIZERS[opt],
        batch_size=128,
    )


study = Study(dataset=datasets.emnist("balanced"), space=search_space, max_epochs=10, val_fraction=0.1,
              sampler=samplers.grid(GRID), description="EMNIST-47: H x optimizer x 5 seeds")
