"""Fixture study: ``quick``'s sub-second trials, but trial 0 waits (up to 120 s) until a second
trial is RUNNING, so a test can tell "two trials train at once" from "the workers happened not
to overlap" (they often did not, on a loaded machine: one worker still importing torch while
another finished every short trial). With one slot the wait times out and the test sees it."""

import time

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig

PARTNER_TIMEOUT_S = 120.0


def search_space(trial: optuna.Trial) -> TrialConfig:
    if trial.number == 0 and trial.study.study_name == "paired":  # not hpsearch's in-memory probes of the space
        deadline = time.monotonic() + PARTNER_TIMEOUT_S
        while time.monotonic() < deadline:
            running = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if len(running) >= 2:
                break
            time.sleep(0.2)  # polling the storage for the partner trial, not a timed wait
    return TrialConfig(
        model=ModelConfig(blocks=1, filters=4, dense=0, batch_norm=False),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-1, log=True)),
        batch_size=trial.suggest_categorical("batch_size", [64, 128]),
    )


study = Study(dataset="digits", space=search_space, max_epochs=2, n_trials=200, train_subset=300)
