"""MNIST: 28×28 handwritten digits, the official 60k/10k split (test never used in search)."""

import optuna

from hpsearch import Study, TrialConfig, space

DATASET = "mnist"


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(2, 3), filters=(8, 16, 32), kernels=(3, 5), dense=(64, 128, 256)),
        optim=space.optimizer(trial, lr=(1e-4, 1e-2)),
        batch_size=space.batch_size(trial, (64, 128, 256)),
        augment=space.augment(trial, DATASET),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=6, n_trials=20, val_fraction=1 / 12)
