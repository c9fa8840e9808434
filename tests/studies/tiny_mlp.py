"""A study with its own model: the README's TinyMLP, registered in the module, on digits."""

from dataclasses import dataclass

import optuna
from torch import nn

from hpsearch import ModelSpec, OptimConfig, Study, TrialConfig, register_model


@register_model("tiny_mlp")
@dataclass(frozen=True)
class TinyMLP(ModelSpec):
    hidden: int = 64

    def build(self, info):  # noqa: ANN001, ANN201
        c, h, w = info.shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, self.hidden), nn.ReLU(),
                             nn.Linear(self.hidden, info.num_classes))


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(model=TinyMLP(hidden=trial.suggest_int("hidden", 16, 128)),
                       optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 1e-3, 1e-2, log=True)))


study = Study(dataset="digits", space=search_space, max_epochs=3, n_trials=2)
