"""The global trial budget: every decision that must be taken under the budget lock.

Three decisions keep a study's promises across processes and machines, and each one reads
the study and then writes it, so each runs under :func:`hpsearch.store.storage.budget_lock`:

- :func:`decide`: a worker's next trial (fail stale trials, count, hand out a grid cell, ask);
- :func:`reclaim`: the supervisor's count before it starts workers (stale trials failed first);
- :func:`create_if_absent`: a new study is created with its settings in one step, so a second
  ``run`` never sees the study without them.

They live here, apart from the worker loop, because a worker is not always the process that
takes them: behind ``hpsearch storage-proxy`` a worker has no database connection and so no
way to take the lock, and the proxy runs these same functions for it (:mod:`hpsearch.store.proxy`).
One implementation, whichever process holds the lock, keeps the two paths from drifting.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import optuna
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from hpsearch.store.compat import storage_of, trial_id
from hpsearch.store.proxy_client import ProxyStorage
from hpsearch.store.records import enqueue, fail_frozen, study_put
from hpsearch.store.rows import state_counts
from hpsearch.store.storage import budget_lock
from hpsearch.study.samplers import SamplerSpec, next_cell
from hpsearch.tasks import Direction

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
WAIT = "wait"


def decide(study: optuna.Study, storage: optuna.storages.BaseStorage, url: str, n_trials: int,
           sampler: SamplerSpec | None = None) -> optuna.Trial | str | None:
    """Decide atomically across processes: a new trial, ``None`` (budget met) or ``WAIT``.

    ``WAIT`` means the budget is taken by running trials. One of them may still fail (or go
    stale when its worker dies), so the worker waits rather than exits: the study always
    ends with exactly ``n_trials`` finished trials. For a grid, the new trial holds the first
    cell no other trial holds (:func:`samplers.next_cell`), decided under the same lock.
    The caller retries the whole decision when the database drops (``with_retry``). Behind
    the storage proxy, the proxy takes this decision (this function, in its process).
    """
    if isinstance(storage, ProxyStorage):
        return storage.decide(study, n_trials, sampler)
    with budget_lock(storage, url, study.study_name):
        fail_stale(study)
        # One snapshot for both counts (a trial finishing between two separate reads would
        # be counted in neither, and the budget would overshoot), and a GROUP BY rather
        # than FrozenTrials: the lock is held while this runs, by every worker, every trial.
        counts = state_counts(study, storage)
        finished = sum(counts.get(s.name, 0) for s in FINISHED_STATES)
        if finished >= n_trials:
            return None
        running = counts.get(TrialState.RUNNING.name, 0)
        if finished + running >= n_trials:
            return WAIT
        if sampler is not None and sampler.kind == "grid" and not counts.get(TrialState.WAITING.name, 0):
            cell = next_cell(sampler, study.get_trials(deepcopy=False))
            if cell is None:  # every cell finished or running: done, or wait for the running ones
                return WAIT if running else None
            enqueue(study, cell, cell=cell)
        trial = study.ask()  # a WAITING trial first: a re-queued or just-enqueued cell
        # First beat before the lock is released: no instant in which a new RUNNING trial
        # has no heartbeat (such a trial could never be found stale, and would hold the
        # budget forever if its worker died right here).
        cast(optuna.storages.RDBStorage, storage).record_heartbeat(trial_id(trial))  # past the proxy: the database's
        return trial


def reclaim(study: optuna.Study, storage: optuna.storages.BaseStorage, url: str) -> tuple[int, dict[str, int]]:
    """Fail trials whose workers are dead, then count: (RUNNING before, counts by state after)."""
    if isinstance(storage, ProxyStorage):
        return storage.reclaim(study.study_name)
    with budget_lock(storage, url, study.study_name):
        before = state_counts(study, storage).get(TrialState.RUNNING.name, 0)
        fail_stale(study)
        return before, state_counts(study, storage)


def create_if_absent(storage: optuna.storages.BaseStorage, url: str, name: str, directions: list[Direction],
                     metric_names: list[str], attrs: dict[str, Any]) -> bool:
    """Create study ``name`` (one direction per objective, each named: optuna-dashboard labels
    its axes with the names) with the study records ``attrs`` unless it exists; True if created."""
    if isinstance(storage, ProxyStorage):
        return storage.create_if_absent(name, directions, metric_names, attrs)
    with budget_lock(storage, url, name):
        if name in optuna.get_all_study_names(storage):
            return False
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
        with warnings.catch_warnings():  # set_metric_names is "experimental" since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names)
        for key, value in attrs.items():
            study_put(study, key, value)
        return True


def fail_stale(study: optuna.Study) -> None:
    """Fail RUNNING trials whose heartbeat is older than the grace period (their worker is dead);
    the storage's callback re-queues their parameters. Call it under the budget lock, before
    counting: every worker does before each ask, and the supervisor before it decides whether
    any budget is left (or a study whose every process was killed would never resume)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def fail_dead(study: optuna.Study, numbers: set[int], error: str) -> list[int] | None:
    """Fail the RUNNING trials ``numbers`` of a worker the supervisor saw die, now, instead of
    once their heartbeat is stale, and re-queue their parameters the way a stale trial's are (the
    storage's retry callback, at most 3 times). Returns the trials it failed.

    A ``kill -9``'d worker's pack stayed RUNNING until some worker next asked for a trial — 12
    minutes once — and its trials then came back one at a time; failed here, they are WAITING
    before the replacement worker starts, which takes them again together. No lock is needed:
    the storage refuses to finish a trial twice, so a worker that fails the same trial as stale
    meanwhile makes this one a no-op.

    None behind the storage proxy: it, not this process, fails stale trials and re-queues them (its
    grace period), and a trial failed here would not be re-queued.
    """
    storage = storage_of(study)
    if isinstance(storage, ProxyStorage):
        return None
    done: list[int] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in numbers and fail_frozen(study, t, error):
            done.append(t.number)
            retry = storage.get_heartbeat_stale_trial_callback() if isinstance(storage, BaseHeartbeat) else None
            if retry is not None:  # from the trial as it ran: the copy must not inherit this failure's error
                retry(study, t)
    return done
