"""Benchmark study: the search space of ../shared/bench/baseline_optuna.py, range for range, on
the same data budget (12k FashionMNIST training images, 5k validation, 5 epochs, batch 64), so
`hpsearch run` and the baseline script can be compared at the same wall-clock budget."""

import optuna

from hpsearch import Study, TrialConfig, space


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(2, 3), filters=(16, 32, 64), organisations=("same", "double", "half"),
                        kernels=(3,), activations=("relu", "gelu", "silu", "elu", "leaky_relu"),
                        batch_norm=(True, False), dropout=(0.0, 0.5), dense=(64, 128, 256)),
        optim=space.optimizer(trial, names=("adam", "adamw", "sgd"), lr=(1e-4, 1e-1), weight_decay=(1e-6, 1e-2),
                              momentum=(0.9, 0.9), schedulers=("none", "cosine", "step")),
        batch_size=space.batch_size(trial, (64,)),
        augment=space.augment(trial, "fashion_mnist", ("flip_crop", "none")),
    )


study = Study(dataset="fashion_mnist", space=search_space, max_epochs=5, n_trials=10000,
              val_fraction=5000 / 60000, train_subset=12000)
