"""Where a trial's bulky records live, and how to read them from any version's study.

optuna-dashboard shows every user attribute of a trial on its page, unwrapped: the full
``config`` (the model spec, the optimiser, the augmentation) and the per-epoch ``curves`` made
trial pages thousands of pixels wide. Both are machine records — the parameters and the
intermediate values already show what a reader needs — so they are now trial *system*
attributes under ``hpsearch:`` keys, which the dashboard does not list. The small attributes
(epochs, seconds, n_params, model, seed, device, …) stay user attributes: they read well there.

Studies written before this change keep them as user attributes (tests/fixtures/dc7b503 is one); every reader goes through
:func:`config_of`, :func:`curves_of_trial` and :func:`repeat_curves_of`, which look in both places.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpsearch.optuna_compat import storage_of, trial_id

CONFIG = "hpsearch:config"  # TrialConfig.to_dict(): what the trial trained (user attribute "config" before)
CURVES = "hpsearch:curves"  # {"train_loss": [...], "val_top1": [...], "seconds": [...], …} per epoch ("curves")
REPEAT_CURVES = "hpsearch:repeat_curves"  # with repeats: {metric: [each seed's curve]} ("repeat_curves")
_OLD_NAMES = {CONFIG: "config", CURVES: "curves", REPEAT_CURVES: "repeat_curves"}


def put(trial: optuna.Trial, key: str, value: Any) -> None:
    """Store a bulky record of the running ``trial`` (one of the keys above)."""
    storage_of(trial.study).set_trial_system_attr(trial_id(trial), key, value)


def _get(trial: FrozenTrial, key: str) -> Any:
    if key in trial.system_attrs:
        return trial.system_attrs[key]
    return trial.user_attrs.get(_OLD_NAMES[key])


def config_of(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's ``TrialConfig.to_dict()``; KeyError if it never got one (rejected before training)."""
    config = _get(trial, CONFIG)
    if config is None:
        raise KeyError(f"trial {trial.number} has no recorded config")
    return config


def curves_of_trial(trial: FrozenTrial) -> dict[str, list[float | None]]:
    """Per-epoch curves by name (empty if the trial trained no epoch)."""
    return _get(trial, CURVES) or {}


def repeat_curves_of(trial: FrozenTrial) -> dict[str, list[list[float]]]:
    """With repeats: each seed's curve of the study metric, by metric name (empty otherwise)."""
    return _get(trial, REPEAT_CURVES) or {}
