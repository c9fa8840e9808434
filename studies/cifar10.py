"""CIFAR-10: 32×32 colour images, 10 classes. Wants a GPU for a real search."""

import optuna

from hpsearch import Study, TrialConfig, space

DATASET = "cifar10"


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(2, 4), filters=(32, 64, 128), kernels=(3, 5), dense=(0, 128, 256)),
        optim=space.optimizer(trial, lr=(1e-4, 3e-2)),
        batch_size=space.batch_size(trial, (64, 128, 256, 512)),
        augment=space.augment(trial, DATASET),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=20, n_trials=30, val_fraction=0.1)
