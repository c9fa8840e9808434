"""Fixture: data from a function (``datasets.tensors``) — digits as arrays, split by hand."""

import numpy as np
import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig, datasets


def load_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)
    return x[:1400], d.target[:1400], x[1400:], d.target[1400:]


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=1, filters=8, dense=0),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 3e-3, 3e-2, log=True)),
        batch_size=64,
    )


study = Study(dataset=datasets.tensors(load_arrays, name="digit_arrays"), space=search_space, max_epochs=2, n_trials=1)
