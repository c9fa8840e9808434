"""Pruners: which trials stop early, and on what axis they are compared.

Optuna's median pruner compares trials at equal *epochs*. That is right when the budget is a
number of trials, but under a wall-clock budget (``--timeout``) an epoch of a 64-filter net
costs several times one of a 16-filter net, and a search that keeps paying for such nets runs
a fraction of the trials (docs/benchmarks.md, section 2). ``MedianTimePruner`` asks the
question a time budget poses instead: after this many seconds, is this trial below the median
of what finished trials had reached after the same number of seconds? A slow model has to earn
its cost; a fast one is not held back. Pruned trials rank below completed ones in TPE, so the
sampler learns to avoid the slow, unrewarding region as well.

Both median pruners read the completed trials after every epoch of every trial. Through
Optuna's cached storage each such read also re-reads every *running* trial with all its
attributes (3 ms with one running trial, 6 ms with eight, on SQLite), which the median never
uses. ``CompletedTrials`` keeps the completed ones instead (a COMPLETE trial never changes) and
asks the database only which ids are complete now: one indexed query.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable
from datetime import datetime

import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from hpsearch.store.compat import (
    backend_of,
    set_trial_system_attr,
    storage_of,
    study_id,
    trial_id,
)
from hpsearch.store.records import ELAPSED
from hpsearch.store.rows import completed_ids

PrunerFactory = Callable[[int], optuna.pruners.BasePruner]  # max_epochs → the pruner a worker uses
_FACTORIES: dict[str, PrunerFactory] = {}


def register_pruner(name: str) -> Callable[[PrunerFactory], PrunerFactory]:
    """Register ``factory(max_epochs) -> optuna pruner`` as ``hpsearch run --pruner NAME``."""
    def add(factory: PrunerFactory) -> PrunerFactory:
        _FACTORIES[name] = factory
        return factory
    return add


def registered() -> list[str]:
    """The pruners by name, as ``run --pruner`` lists them."""
    return list(_FACTORIES)


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    if name not in _FACTORIES:
        raise ValueError(f"unknown pruner {name!r}; use {', '.join(registered())}")
    return _FACTORIES[name](max_epochs)


def _warmup(max_epochs: int) -> int:
    return max(1, max_epochs // 4)  # judge only after a quarter of training (and only once 5 trials finished)


@register_pruner("median")
def _median(max_epochs: int) -> optuna.pruners.BasePruner:
    return ReadsCompletedOnce(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=_warmup(max_epochs)))


@register_pruner("median-time")
def _median_time(max_epochs: int) -> optuna.pruners.BasePruner:
    return ReadsCompletedOnce(MedianTimePruner(n_startup_trials=5, n_warmup_steps=_warmup(max_epochs)))


@register_pruner("hyperband")
def _hyperband(max_epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)


@register_pruner("none")
def _none(max_epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


class MedianTimePruner(optuna.pruners.BasePruner):
    """Prune a trial whose best value so far is below the median, at the same elapsed seconds,
    of the completed trials' last reported values.

    Each call records (step, seconds since the trial started) on the trial, so completed
    trials carry their learning curve on the clock. A completed trial that had reported
    nothing by that many seconds is left out of the median (it was slower still); one that
    had already finished counts with its final value.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 1,
                 elapsed: Callable[[FrozenTrial], float] | None = None) -> None:
        """``elapsed(trial)``: seconds since the trial started (the wall clock by default; tests
        pass their own, so a loaded machine cannot change what they compare)."""
        if n_startup_trials < 0 or n_warmup_steps < 0:
            raise ValueError("n_startup_trials and n_warmup_steps must be >= 0")
        self._n_startup_trials = n_startup_trials
        self._n_warmup_steps = n_warmup_steps
        self._elapsed = elapsed or _wall_seconds

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or trial.datetime_start is None:
            return False
        elapsed = self._elapsed(trial)
        clock = [*trial.system_attrs.get(ELAPSED, []), [step, elapsed]]
        # Optuna's own pruners keep their bookkeeping in system attributes the same way.
        set_trial_system_attr(study, trial, ELAPSED, clock)

        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < max(1, self._n_startup_trials) or step < self._n_warmup_steps:
            return False
        seen = [v for v in (value_at(t, elapsed) for t in completed) if v is not None and not math.isnan(v)]
        values = [v for v in trial.intermediate_values.values() if not math.isnan(v)]
        if not values:
            return True  # only NaN so far: nothing to wait for
        if not seen:
            return False
        median = statistics.median(seen)
        if study.direction == StudyDirection.MAXIMIZE:
            return max(values) < median
        return min(values) > median


def _wall_seconds(trial: FrozenTrial) -> float:
    assert trial.datetime_start is not None
    return (datetime.now() - trial.datetime_start).total_seconds()


def value_at(trial: FrozenTrial, seconds: float) -> float | None:
    """The last value ``trial`` had reported ``seconds`` after it started, or None."""
    reached = [int(step) for step, at in trial.system_attrs.get(ELAPSED, []) if at <= seconds]
    if not reached:
        return None
    return trial.intermediate_values.get(max(reached))


class CompletedTrials:
    """A study's COMPLETE trials, each read from the database once.

    The first read loads them all; later reads ask only for the ids that are complete now and
    fetch the new ones. Anything but an RDB storage (or a schema the id query does not fit)
    reads through Optuna's public API, with the same result.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, FrozenTrial] | None = None

    def read(self, study: optuna.Study) -> list[FrozenTrial]:
        backend = backend_of(storage_of(study))  # under Optuna's cache
        ids = None
        if self._by_id is not None and isinstance(backend, RDBStorage):
            try:
                ids = completed_ids(backend, study_id(study))
            except SQLAlchemyError:  # database away or another schema: the public path retries
                pass
        if ids is None or self._by_id is None:
            trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if isinstance(backend, RDBStorage):
                self._by_id = {trial_id(t): t for t in trials}
            return trials
        for tid in ids:
            if tid not in self._by_id:
                self._by_id[tid] = storage_of(study).get_trial(tid)
        return sorted(self._by_id.values(), key=lambda t: t.number)


class ReadsCompletedOnce(optuna.pruners.BasePruner):
    """Runs a pruner that reads only completed trials against a ``CompletedTrials`` cache."""

    def __init__(self, pruner: optuna.pruners.BasePruner) -> None:
        self.pruner = pruner
        self._completed = CompletedTrials()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.pruner.prune(_StudyView(study, self._completed), trial)  # type: ignore[arg-type]


class _StudyView:
    """The study as a pruner sees it: completed trials come from the cache, the rest as is."""

    def __init__(self, study: optuna.Study, completed: CompletedTrials) -> None:
        self._study, self._completed = study, completed

    def get_trials(self, deepcopy: bool = True, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        if states is not None and tuple(states) == (TrialState.COMPLETE,):
            trials = self._completed.read(self._study)
            return copy.deepcopy(trials) if deepcopy else trials
        return self._study.get_trials(deepcopy=deepcopy, states=states)

    def __getattr__(self, name: str) -> object:
        return getattr(self._study, name)
