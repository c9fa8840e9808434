"""Benchmark study: the full digits search space on 16 training images, so a trial is nearly all
bookkeeping (ask, TPE sampling, user attributes, 10 per-epoch reports + pruning checks, tell)."""

import optuna

from hpsearch import Study, TrialConfig, space


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(1, 2), filters=(8, 16), kernels=(3, 5), dense=(0, 64)),
        optim=space.optimizer(trial, lr=(3e-4, 3e-2)),
        batch_size=space.batch_size(trial, (16,)),
        augment=space.augment(trial, "digits"),
    )


study = Study(dataset="digits", space=search_space, max_epochs=10, n_trials=100, val_fraction=0.05,
              train_subset=16)
