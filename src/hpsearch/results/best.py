"""`hpsearch best`: what the study's answer is, in one service the CLI only draws.

One objective: the best trial, and the retrain record if there is one. Several objectives
without ``--retrain``: the Pareto front instead (there is no single best). With a retrain
request, :func:`hpsearch.results.retrain.retrain` applies the "once" policy and looks at the test
split only where it must. The answer also says when the record no longer matches the study's
best trial (more trials finished after the retrain), so the user is not left reading a stale
record as today's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

from hpsearch.store.queries import best_trial, chosen_trial, objective_names, pareto_front, recorded, settings_of
from hpsearch.store.records import RetrainRecord, looks_counted

if TYPE_CHECKING:
    from hpsearch.results.retrain import Progress, RetrainRequest, Ticker


@dataclass(frozen=True)
class BestAnswer:
    """What ``best`` shows: either ``front`` (several objectives, no retrain) or ``trial``."""

    study: str
    metric: str
    objectives: list[str]
    multi: bool
    trial: FrozenTrial | None  # the best (or, with several objectives, the chosen) trial
    front: list[FrozenTrial] | None  # several objectives without --retrain: the Pareto front
    record: RetrainRecord | None
    looked: bool  # this call looked at the test split
    looks: int  # the study's looks at the test split so far (compare --test counts too)

    @property
    def stale(self) -> bool:
        """The record is of another trial than today's best (one objective: more trials finished)."""
        return (self.record is not None and self.trial is not None and not self.multi
                and self.trial.number not in [c["trial"] for c in self.record["candidates"]]
                and self.trial.number != self.record["trial"])


def best(study: optuna.Study, trial: int | None = None, retrain: RetrainRequest | None = None,
         progress: Progress | None = None, tick: Ticker | None = None) -> BestAnswer:
    """The study's answer; with ``retrain``, computed (or read from the record) by the retrain service."""
    settings = settings_of(study)
    names = objective_names(study)
    record, looked = recorded(study), False
    if settings.multi and retrain is None and trial is None:
        front = pareto_front(study)
        if not front:
            best_trial(study)  # raises: nothing completed yet
        return BestAnswer(study.study_name, settings.metric, names, True, None, front, record, False,
                          looks_counted(study))
    top = chosen_trial(study, trial) if settings.multi and trial is not None else best_trial(study)
    if retrain is not None:
        from hpsearch.results.retrain import retrain as do_retrain  # torch and the trainer load only here

        done = do_retrain(study, retrain, progress, tick)
        record, looked = done.record, done.looked
    return BestAnswer(study.study_name, settings.metric, names, settings.multi, top, None, record, looked,
                      looks_counted(study))
