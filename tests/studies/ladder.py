"""Fixture: an ablation ladder of 3 named variants × 3 seeds, as one grid study."""

import optuna

from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig, samplers

VARIANTS = {
    "baseline": dict(dropout=0.0, batch_norm=False),
    "+dropout": dict(dropout=0.3, batch_norm=False),
    "+bn": dict(dropout=0.3, batch_norm=True),
}


def search_space(trial: optuna.Trial) -> TrialConfig:
    variant = VARIANTS[trial.suggest_categorical("variant", list(VARIANTS))]
    return TrialConfig(model=ModelConfig(blocks=1, filters=8, dense=32, **variant),
                       optim=OptimConfig(name="adam", lr=3e-3), batch_size=64)


study = Study(dataset="digits", space=search_space, max_epochs=3,
              sampler=samplers.grid({"variant": list(VARIANTS), "seed": [0, 1, 2]}))
