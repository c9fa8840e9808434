"""Fashion-MNIST: 28×28 clothing images, 10 classes; validation is 5k of the 60k training images.

Sized for a CPU: up to 32 base filters and 6 epochs keep one epoch of the full 55k training
images under about a minute per worker thread. With a GPU, widen `filters` and `max_epochs`.
"""

import optuna

from hpsearch import Study, TrialConfig, space

DATASET = "fashion_mnist"


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(2, 3), filters=(8, 16, 32), kernels=(3, 5), dense=(64, 128, 256)),
        optim=space.optimizer(trial, lr=(3e-4, 1e-2)),
        batch_size=space.batch_size(trial, (64, 128, 256)),
        augment=space.augment(trial, DATASET),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=6, n_trials=20, val_fraction=1 / 12)
