"""Fixture study with trials long enough to interrupt or kill mid-trial.

About 1.7 s a trial with two workers on 2 cores (2026-12-06). The trainer got faster until this
study's trials took 0.5 s, and a Ctrl-C sent once a trial was seen RUNNING sometimes arrived after
both trials had finished (no trial left to mark interrupted): keep it well above the time a test
takes to see a RUNNING trial and signal the run.
"""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(blocks=2, filters=16, dense=0),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-2, log=True)),
        batch_size=32,
    )


study = Study(dataset="digits", space=search_space, max_epochs=25, n_trials=3)
