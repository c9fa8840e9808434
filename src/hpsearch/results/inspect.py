"""`hpsearch inspect`: look inside a trial's model — its layers, for now.

A trial is rebuilt from what the study stored (its config and spec; a spec the user wrote is
imported from the study module, as a retrain imports it) and measured on one blank image of the
study's input size: each layer's output shape, its parameters (trainable and frozen) and its
forward FLOPs (:func:`hpsearch.models.layers`). No weights and no image of any split are read:
shapes and counts do not depend on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpsearch.errors import BadOption, HpsearchError
from hpsearch.models import Layer, layers
from hpsearch.store.queries import best_trial, settings_of
from hpsearch.store.records import FINGERPRINT, config_of, study_get
from hpsearch.study.config import TrialConfig
from hpsearch.study.rebuild import ensure_specs


@dataclass(frozen=True)
class LayerTable:
    """A trial's model, layer by layer, with the totals the search recorded for it."""

    study: str
    trial: int
    chosen: str  # why this trial: "the best trial", "--trial 7"
    model: dict[str, Any]  # the spec, as stored
    input: tuple[int, ...]  # one image: (C, H, W)
    rows: list[Layer]

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "trial": self.trial, "chosen": self.chosen, "model": self.model,
                "input": list(self.input), "params": self.params, "trainable": self.trainable,
                "frozen": self.params - self.trainable, "flops": self.flops,
                "layers": [r.to_dict() for r in self.rows]}


def layer_table(study: optuna.Study, trial: int | None = None, studies_dir: Path | None = None,
                allow_module_change: bool = False) -> LayerTable:
    """Trial ``trial``'s model (default: the study's answer, :func:`best_trial`), layer by layer."""
    settings = settings_of(study)
    chosen = _trial(study, trial)
    try:
        stored = config_of(chosen)
    except KeyError:
        raise HpsearchError(f"trial {chosen.number} has no recorded config (it was rejected or failed before "
                            "training); `hpsearch trials` lists the others") from None
    ensure_specs([stored], settings, study_get(study, FINGERPRINT, {}), studies_dir, allow_module_change)
    config = TrialConfig.from_dict(stored)
    info = settings.data.info
    return LayerTable(study.study_name, chosen.number, "the best trial" if trial is None else f"--trial {trial}",
                      config.model.to_dict(), tuple(info.shape), layers(config.model, info))


def _trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    if number is None:
        return best_trial(study)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise BadOption(f"--trial {number}: study {study.study_name!r} has trials 0–{len(trials) - 1}")
    return trials[number]
