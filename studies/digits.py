"""Digits: scikit-learn's bundled 8×8 handwritten digits. Runs offline in minutes on a CPU.

1,797 images; hpsearch holds out a fixed stratified 25 % as the test split, and the search
validates on 20 % of the rest. Small images, so at most three conv blocks (8 → 4 → 2 → 1).
"""

import optuna

from hpsearch import Study, TrialConfig, space

DATASET = "digits"


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(1, 3), filters=(16, 32, 64), kernels=(3, 5), dense=(0, 64, 128)),
        optim=space.optimizer(trial, lr=(3e-4, 3e-2)),
        batch_size=space.batch_size(trial, (32, 64, 128)),
        augment=space.augment(trial, DATASET),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=20, n_trials=20, val_fraction=0.2)
