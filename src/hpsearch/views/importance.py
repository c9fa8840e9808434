"""Parameter importances computed exactly as optuna-dashboard computes its importance panel.

A reader who opens the HTML report next to ``hpsearch dashboard`` must not see two rankings of
the parameters. optuna-dashboard 0.21 computes its "Hyperparameter Importance" panel with
Optuna's PED-ANOVA evaluator (default quantiles) on the completed trials, with the score negated
for a maximised objective (PED-ANOVA ranks what it takes to reach *low* target values). We call
the same evaluator the same way, so both views show the same numbers; a test compares them with
the running dashboard's API.

PED-ANOVA compares the parameters of the top 10 % of the completed trials with all of them.
Optuna's documentation advises at least 5 trials in that top 10 %, so below
:data:`RELIABLE_TRIALS` completed trials the ranking rests on one to four trials: the views say so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch.study.samplers import SEED_PARAM

TOP_QUANTILE = 0.1  # PedAnovaImportanceEvaluator's default target_quantile, which the dashboard uses
RELIABLE_TRIALS = 50  # 5 trials in the top 10 %: Optuna's advice for a stable PED-ANOVA
METHOD = ("PED-ANOVA (Optuna's PedAnovaImportanceEvaluator, as optuna-dashboard's importance panel "
          "computes it): how differently each parameter is distributed in the best 10 % of the "
          "completed trials than in all of them")


@dataclass(frozen=True)
class Importances:
    """Normalised importances (summing to 1, largest first) and the evidence behind them."""

    values: dict[str, float]
    completed: int  # completed trials the evaluator saw
    objective: int  # which objective (0: the study metric)

    @property
    def top_trials(self) -> int:
        """How many trials form PED-ANOVA's top quantile (what the ranking really rests on)."""
        return math.ceil(TOP_QUANTILE * self.completed)  # the cut-off _QuantileFilter computes

    @property
    def reliable(self) -> bool:
        return self.completed >= RELIABLE_TRIALS


def param_importances(study: optuna.Study, objective: int = 0) -> Importances:
    """The dashboard's computation for ``objective``; empty values below two completed trials
    (the dashboard shows nothing then either)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    completed = len(done)
    if completed <= 1:
        return Importances({}, completed, objective)
    # the parameters every completed trial has (Optuna's own choice when given none), less a grid's
    # seed: seeds are replicates, and ranking them would read noise as a setting (the dashboard,
    # which knows no seeds, still ranks it)
    shared = set.intersection(*(set(t.params) for t in done)) - {SEED_PARAM}
    params = [p for p in done[0].params if p in shared]
    if not params:
        return Importances({}, completed, objective)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "computes the importances of params to achieve low target values": intended
        values = get_param_importances(study, target=_target(study, objective), params=params,
                                       evaluator=PedAnovaImportanceEvaluator())
    return Importances(dict(values), completed, objective)


def _target(study: optuna.Study, objective: int) -> Callable[[FrozenTrial], float]:
    sign = -1.0 if study.directions[objective] == StudyDirection.MAXIMIZE else 1.0

    def target(t: FrozenTrial) -> float:
        return sign * t.values[objective]
    return target
