"""Search-space building blocks for study modules.

Each function asks the trial for one part of a :class:`~hpsearch.config.TrialConfig` and
takes the ranges as keyword arguments, so a study names only what it narrows::

    def space(trial):
        return TrialConfig(model=space.cnn(trial, blocks=(1, 3)), optim=space.optimizer(trial),
                           batch_size=space.batch_size(trial), augment=space.augment(trial, DIGITS))

Parameters that only make sense in one branch are only asked there (momentum for SGD and
RMSprop, Nesterov for SGD), so TPE never models a value that had no effect.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from hpsearch.config import ACTIVATIONS, OPTIMIZERS, SCHEDULERS, ModelConfig, OptimConfig, TrialConfig
from hpsearch.data import DatasetInfo, get_source


def cnn(
    trial: optuna.Trial,
    *,
    blocks: tuple[int, int] = (1, 3),
    filters: Sequence[int] = (16, 32, 64),
    organisations: Sequence[str] = ("same", "double", "half"),
    kernels: Sequence[int] = (3, 5),
    activations: Sequence[str] = ACTIVATIONS,
    batch_norm: Sequence[bool] = (True, False),
    dropout: tuple[float, float] = (0.0, 0.5),
    dense: Sequence[int] = (0, 64, 128, 256),
) -> ModelConfig:
    return ModelConfig(
        blocks=trial.suggest_int("blocks", *blocks),
        filters=trial.suggest_categorical("filters", list(filters)),
        organisation=trial.suggest_categorical("organisation", list(organisations)),  # type: ignore[arg-type]
        kernel=trial.suggest_categorical("kernel", list(kernels)),
        activation=trial.suggest_categorical("activation", list(activations)),
        batch_norm=trial.suggest_categorical("batch_norm", list(batch_norm)),
        dropout=trial.suggest_float("dropout", *dropout),
        dense=trial.suggest_categorical("dense", list(dense)),
    )


def optimizer(
    trial: optuna.Trial,
    *,
    names: Sequence[str] = OPTIMIZERS,
    lr: tuple[float, float] = (1e-4, 3e-2),
    weight_decay: tuple[float, float] = (1e-6, 1e-2),
    momentum: tuple[float, float] = (0.8, 0.99),
    schedulers: Sequence[str] = SCHEDULERS,
) -> OptimConfig:
    name = trial.suggest_categorical("optimizer", list(names))
    mom, nesterov = 0.0, False
    if name in ("sgd", "rmsprop"):
        mom = trial.suggest_float("momentum", *momentum)
    if name == "sgd":
        nesterov = trial.suggest_categorical("nesterov", [False, True])
    return OptimConfig(
        name=name,
        lr=trial.suggest_float("lr", *lr, log=True),
        weight_decay=trial.suggest_float("weight_decay", *weight_decay, log=True),
        momentum=mom,
        nesterov=nesterov,
        scheduler=trial.suggest_categorical("scheduler", list(schedulers)),
    )


def batch_size(trial: optuna.Trial, choices: Sequence[int] = (32, 64, 128)) -> int:
    return trial.suggest_categorical("batch_size", list(choices))


def augment(trial: optuna.Trial, dataset: str | DatasetInfo, choices: Sequence[str] | None = None) -> str:
    """One of the augmentations that preserve this dataset's labels (no flips for digits)."""
    info = get_source(dataset).info if isinstance(dataset, str) else dataset
    allowed = list(choices) if choices is not None else list(info.augmentations)
    bad = [a for a in allowed if a not in info.augmentations]
    if bad:
        raise ValueError(f"augmentation {', '.join(bad)} does not fit {info.name}; "
                         f"choose from {', '.join(info.augmentations)}")
    return trial.suggest_categorical("augment", allowed)


def standard(trial: optuna.Trial, info: DatasetInfo, *, blocks: tuple[int, int] = (1, 3)) -> TrialConfig:
    """The full default space for ``info``'s dataset: every knob, ranges that suit small images."""
    return TrialConfig(
        model=cnn(trial, blocks=blocks),
        optim=optimizer(trial),
        batch_size=batch_size(trial),
        augment=augment(trial, info),
    )
