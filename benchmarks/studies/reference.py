"""Benchmark study: the reference CNN of ../shared/bench/limit_epoch.py on 12k FashionMNIST
images (5k validation), 2 epochs, one fixed configuration — every trial does the same work, so
trained images per second compare worker counts, not luck."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(model=ModelConfig(blocks=2, filters=32, organisation="same", kernel=3, activation="relu",
                                         batch_norm=True, dropout=0.2, dense=128),
                       optim=OptimConfig(name="adam", lr=1e-3), batch_size=64, augment="none")


study = Study(dataset="fashion_mnist", space=search_space, max_epochs=2, n_trials=4, val_fraction=5000 / 60000,
              train_subset=12000)
