"""Fixture study whose trials crash during the search (not when the space is first probed).

It stands for a bug that only shows in real trials, such as running out of memory: the run
must stop with the error after a few failures instead of looping through the budget.
"""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    lr = trial.suggest_float("lr", 1e-3, 1e-2, log=True)
    if trial.study.study_name == "crashing":  # the real study; hpsearch's own probes use other names
        raise RuntimeError("boom: this space always fails")
    return TrialConfig(model=ModelConfig(blocks=1, filters=8, dense=0), optim=OptimConfig(lr=lr))


study = Study(dataset="digits", space=search_space, max_epochs=1, n_trials=10)
