"""FCN vs CNN on Fashion-MNIST at the same parameter count (the course reports' first comparison).

The fully connected network is the reports' 784-512-512-10 MLP (669,706 parameters); the CNN
is two blocks of same-width 3×3 convolutions with a 64-unit dense head, its width chosen by
``space.match_params`` so its parameter count is the closest to the MLP's (149 filters:
669,724 parameters). The family is a search dimension beside the learning rate and the batch
size, so each gets its own tuning and `hpsearch trials fcn_vs_cnn` or the report's "score
against model size" plot compares them at their best.
"""

import optuna

from hpsearch import CNN, MLP, Study, TrialConfig, space

DATASET = "fashion_mnist"
FCN = MLP(hidden=(512, 512))
MATCHED_CNN = space.match_params(FCN, lambda f: CNN(blocks=2, filters=f, organisation="same", dense=64), DATASET)


def search_space(trial: optuna.Trial) -> TrialConfig:
    family = trial.suggest_categorical("family", ["fcn", "cnn"])
    return TrialConfig(
        model=FCN if family == "fcn" else MATCHED_CNN,
        optim=space.optimizer(trial, names=("adam",), lr=(1e-4, 1e-2), weight_decay=None, schedulers=("none",)),
        batch_size=space.batch_size(trial, (32, 64, 128)),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=10, n_trials=24, val_fraction=1 / 12)
