"""`hpsearch best`: what the study's answer is, in one service the CLI only draws.

One objective: the best trial, and the retrain record if there is one. Several objectives
without ``--retrain``: the Pareto front instead (there is no single best). With a retrain
request, :func:`hpsearch.results.retrain.retrain` applies the "once" policy and looks at the test
split only where it must. The answer also says when the record no longer matches the study's
best trial (more trials finished after the retrain), so the user is not left reading a stale
record as today's answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

from hpsearch.errors import BadOption
from hpsearch.store.queries import (
    Configuration,
    best_trial,
    chosen_trial,
    configurations,
    objective_names,
    pareto_front,
    recorded,
    replicated,
    settings_of,
    where_configurations,
)
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
    # chosen by a configuration's mean (a seed dimension, or --where): that configuration; else None
    configuration: Configuration | None = None
    where: dict[str, str] | None = None  # the row of `compare` asked for
    others: int = 0  # --where: further configurations in that row (the best mean was chosen)

    @property
    def stale(self) -> bool:
        """The record is of another trial than today's best (one objective: more trials finished)."""
        return (self.record is not None and self.trial is not None and not self.multi
                and self.trial.number not in [c["trial"] for c in self.record["candidates"]]
                and self.trial.number != self.record["trial"])


def parse_where(text: str) -> dict[str, str]:
    """``width=32,opt=sgd`` → ``{"width": "32", "opt": "sgd"}``: a row of ``compare``, as its footer prints it."""
    where: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise BadOption(f"--where takes PARAM=VALUE pairs separated by commas (e.g. --where opt=sgd,width=32), "
                            f"got {part!r}")
        where[name.strip()] = value.strip()
    return where


def best(study: optuna.Study, trial: int | None = None, retrain: RetrainRequest | None = None,
         progress: Progress | None = None, tick: Ticker | None = None,
         where: Mapping[str, str] | None = None) -> BestAnswer:
    """The study's answer; with ``retrain``, computed (or read from the record) by the retrain service.

    ``where`` picks a row of ``compare`` (parameter values): its configuration with the best
    validation mean stands for it, so the retrain is of the row the user chose, not of whichever
    seed was luckiest. A study with a seed dimension is answered the same way without ``where``.
    """
    settings = settings_of(study)
    names = objective_names(study)
    record, looked = recorded(study), False
    if where is not None and trial is not None:
        raise BadOption("--where and --trial both choose what to retrain: give one")
    if settings.multi and retrain is None and trial is None and where is None:
        front = pareto_front(study)
        if not front:
            best_trial(study)  # raises: nothing completed yet
        return BestAnswer(study.study_name, settings.metric, names, True, None, front, record, False,
                          looks_counted(study))
    config, others = None, 0
    if where is not None:
        if settings.multi:
            raise BadOption("--where picks a row by its mean, which several objectives do not have; "
                            "pick a Pareto-front point with --trial N")
        found = where_configurations(study, where)
        config, others = found[0], len(found) - 1
        top = config.lead
        if retrain is not None:  # the service retrains that trial's config; named the user's way in its messages
            retrain = replace(retrain, trial=top.number,
                              named_by="--where " + ",".join(f"{k}={v}" for k, v in where.items()))
    elif settings.multi and trial is not None:
        top = chosen_trial(study, trial)
    else:
        top = best_trial(study)
        if replicated(study):
            config = next(c for c in configurations(study) if c.lead.number == top.number)
    if retrain is not None:
        from hpsearch.results.retrain import retrain as do_retrain  # torch and the trainer load only here

        done = do_retrain(study, retrain, progress, tick)
        record, looked = done.record, done.looked
    return BestAnswer(study.study_name, settings.metric, names, settings.multi, top, None, record, looked,
                      looks_counted(study), config, dict(where) if where is not None else None, others)
