"""Worker processes: each pulls trials from the shared study until the global budget is met.

A worker loads its data once, then loops: under the budget lock, fail stale trials, count
finished + running trials, and ask for a new one only if that count is below the budget.
Crashed trials (FAIL) do not count, so the budget is topped up; a run of consecutive
failures stops the worker with the error instead of looping forever. With
``--trials-per-worker K`` a worker takes up to K trials, one budget decision each, and trains
them together (:meth:`hpsearch.run.objective.Objective.train`: fused where they can be).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import optuna
import torch
from filelock import FileLock, Timeout
from optuna.trial import TrialState

from hpsearch.data import load_search_data, seal
from hpsearch.errors import HpsearchError, StudyModuleError, TrialsFailing
from hpsearch.run import interrupts, oom
from hpsearch.run.objective import Objective, Outcome
from hpsearch.run.pruners import make_pruner
from hpsearch.store.budget import decide
from hpsearch.store.compat import trial_id
from hpsearch.store.queries import primary_value  # a pruned trial's is its last report
from hpsearch.store.records import FINGERPRINT, SETTINGS, put_attrs, study_get
from hpsearch.store.storage import Heartbeat, heartbeat_interval, open_storage, with_retry
from hpsearch.study import discover
from hpsearch.study.declaration import StoredSettings
from hpsearch.study.samplers import SamplerSpec
from hpsearch.train.loop import warm_up
from hpsearch.train.options import Speedups

MAX_CONSECUTIVE_FAILURES = 3
REQUEUED = "re-queued"  # run_trials' error for a trial failed only to run again (out of memory beside others)


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker process needs; plain data so it pickles into a spawned process."""

    index: int
    study_path: str
    study_name: str
    storage_url: str
    n_trials: int
    deadline: float | None  # wall-clock time after which no new trial starts
    device: str
    threads: int
    data_root: str
    sampler_seed: int
    pruner: str
    allow_module_change: bool = False
    cpu_slots: str | None = None  # folder of slot lock files when workers outnumber the cores
    n_slots: int = 0
    trials_per_worker: int = 1  # trials a worker trains at once (fused where they can be: Objective.train)
    speedups: Speedups = Speedups()  # fusion and capture, as the CLI resolved them
    train_digest: str | None = None  # the decoded training split the supervisor checked (data.read_checked)
    # the supervisor's environment when it started this worker: a worker is forked from the fork
    # server, which holds the one of its own start (a notebook may have changed it since); the
    # folder, sys.path and main module travel in multiprocessing's own preparation data
    environ: dict[str, str] | None = None
    stop_at: float | None = None  # --deadline: wall-clock time after which a running trial stops at its epoch's end


class CpuSlots:
    """At most ``n`` trials train at once on this machine, however many CPU workers run.

    With more workers than cores even one thread each oversubscribes the CPU (measured: 4
    workers on 2 cores trained ~10 % fewer images per second than 2). A worker takes a slot
    before it asks for a trial and frees it when the trial ends. Slots are lock files held
    with ``flock``, so the kernel frees the slot of a worker that is killed.
    """

    def __init__(self, folder: str, n: int) -> None:
        self.locks = [FileLock(str(Path(folder) / f"slot-{i}.lock")) for i in range(n)]

    @contextmanager
    def hold(self, keep_waiting: Callable[[], bool]) -> Iterator[bool]:
        """Yield True holding a slot, or False if ``keep_waiting`` turned false first."""
        while keep_waiting():
            for lock in self.locks:
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                try:
                    yield True
                finally:
                    lock.release()
                return
            time.sleep(0.05)
        yield False


def next_trial(study: optuna.Study, storage: optuna.storages.BaseStorage, url: str,
               n_trials: int, sampler: SamplerSpec | None = None) -> optuna.Trial | str | None:
    """A new trial, ``None`` (budget met) or ``WAIT``: :func:`hpsearch.store.budget.decide`, retried
    as a whole while the database (or the storage proxy) is away."""
    return with_retry(lambda: decide(study, storage, url, n_trials, sampler), url)


def worker_main(job: WorkerJob, events: Queue, stop: Event) -> None:
    """Process entry point: report every outcome as an event; exit non-zero on error.

    SIGINT or SIGTERM marks the running trial failed and exits 128 + the signal (see
    ``interrupts``): the supervisor replaces a worker that exits 143 while the run goes on.
    """
    if job.environ is not None:
        os.environ.clear()
        os.environ.update(job.environ)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # the fork server ignores it (run/_forkserver.py)
    interrupts.install()
    try:
        if hasattr(signal, "pthread_sigmask"):  # blocked by WorkerPool.start until the handler was installed
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _work(job, events, stop)
    except KeyboardInterrupt as err:
        events.put(("interrupted", job.index))
        sys.exit(interrupts.exit_code(err))
    except HpsearchError as err:
        events.put(("error", job.index, str(err)))
        sys.exit(err.exit_code)
    except Exception as err:  # noqa: BLE001 - reported to the parent, which prints one line
        events.put(("error", job.index, f"{type(err).__name__}: {err}", traceback.format_exc()))
        sys.exit(1)
    events.put(("done", job.index))


def _work(job: WorkerJob, events: Queue, stop: Event) -> None:
    torch.set_num_threads(job.threads)
    seal()  # before the study module is imported: no user code runs unsealed here
    loaded = discover.load(job.study_path)
    storage = open_storage(job.storage_url, create=False)
    study = optuna.load_study(study_name=job.study_name, storage=storage)
    settings = StoredSettings.from_dict(study_get(study, SETTINGS))
    study.sampler = settings.sampler.build(job.sampler_seed, job.n_trials)  # what the study stored
    created_from = study_get(study, FINGERPRINT, {}).get("source_sha256")
    if created_from != loaded.source_sha256 and not job.allow_module_change:
        raise StudyModuleError(f"{loaded.path} changed since study {job.study_name!r} was created; "
                               "restart the run (it will say what differs) or pass --allow-module-change")
    # a grid runs every cell to its last epoch: a pruned cell would be a hole in the comparison;
    # several objectives have no one intermediate value to prune on
    unpruned = settings.sampler.kind == "grid" or settings.multi
    study.pruner = make_pruner("none" if unpruned else job.pruner, settings.max_epochs)
    device = torch.device(job.device)
    data = load_search_data(settings.data, Path(job.data_root), device, recorded=job.train_digest,
                            say=lambda m: print(m, file=sys.stderr), files_hash=settings.data_hash)
    warm_up()

    def on_epoch(number: int, m: Any) -> None:
        if not _parent_alive():  # orphaned (the supervisor was killed): fail this trial and stop
            raise KeyboardInterrupt
        events.put(("epoch", job.index, number, m.epoch, float(getattr(m, settings.metric))))
        if job.stop_at is not None and time.time() >= job.stop_at:  # --deadline: pruned here, its curve kept
            raise optuna.TrialPruned(f"stopped at the --deadline after epoch {m.epoch}")

    objective = Objective(loaded.study, settings, data, device, on_epoch, job.speedups)
    slots = CpuSlots(job.cpu_slots, job.n_slots) if job.cpu_slots else None

    def go_on() -> bool:
        return not stop.is_set() and _parent_alive() and (job.deadline is None or time.time() < job.deadline)

    failures = 0
    at_once = job.trials_per_worker
    while go_on():
        with slots.hold(go_on) if slots else nullcontext(True) as slot:
            if not slot:
                return
            with interrupts.deferred():  # until run_trials owns the trials (see interrupts.deferred)
                trials = take_trials(study, storage, job.storage_url, job.n_trials, settings.sampler, at_once)
                if trials is None:
                    return
                if isinstance(trials, str):
                    outcomes = None
                else:
                    for t in trials:
                        events.put(("start", job.index, t.number))
                    outcomes = run_trials(study, storage, trials, objective, lambda number, e: events.put(
                        ("end", job.index, number, e[0].name, e[1])))
        if outcomes is None:
            stop.wait(heartbeat_interval())
            continue
        if any(error == REQUEUED for _, (_, _, error) in outcomes):  # out of memory beside others: fewer at once
            at_once = max(1, at_once // 2)
        # a re-queued trial runs again: no failure streak. A pack counts once (one fused step's error fails all of it)
        failed = [(n, error) for n, (state, _, error) in outcomes if state == TrialState.FAIL and error != REQUEUED]
        if len(failed) < len(outcomes):
            failures = 0
            continue
        failures += 1
        if failures >= MAX_CONSECUTIVE_FAILURES:
            number, error = failed[-1]
            what = "trials" if job.trials_per_worker == 1 else "packs of trials"
            raise TrialsFailing(
                f"{failures} {what} in a row failed (last: trial {number}: {error}); "
                f"stopping instead of burning the budget — fix the cause, then rerun to resume"
            )


def take_trials(study: optuna.Study, storage: optuna.storages.BaseStorage, url: str, n_trials: int,
                sampler: SamplerSpec | None, k: int) -> list[optuna.Trial] | str | None:
    """Up to ``k`` new trials, each its own budget decision (:func:`next_trial`), so the budget stays
    exact: ``None`` (budget met) or ``WAIT`` when not even one is to be had."""
    first = next_trial(study, storage, url, n_trials, sampler)
    if first is None or isinstance(first, str):
        return first
    trials = [first]
    while len(trials) < k:
        more = next_trial(study, storage, url, n_trials, sampler)
        if more is None or isinstance(more, str):
            break
        trials.append(more)
    return trials


Ended = tuple[TrialState, float | None, str | None]  # a told trial: its state, value, and error if it failed


def run_trials(study: optuna.Study, storage: optuna.storages.RDBStorage, trials: list[optuna.Trial],
               objective: Objective, on_end: Callable[[int, Ended], None] | None = None) -> list[tuple[int, Ended]]:
    """Train ``trials`` together (:meth:`Objective.train`) and tell each its outcome as soon as it
    is known; ``(number, outcome)`` in the order they ended, each also passed to ``on_end``.

    Every trial beats its own heartbeat until it is told. On SIGINT/SIGTERM every trial not yet
    told is marked failed ("interrupted") before the interrupt goes on up.
    """
    ended: list[tuple[int, Ended]] = []
    told: set[int] = set()
    with ExitStack() as stack:
        beats = {t.number: stack.enter_context(Heartbeat(storage, trial_id(t))) for t in trials}

        pack = [t.number for t in trials]

        def settle(trial: optuna.Trial, outcome: Outcome) -> None:
            result = _settle(study, trial, outcome, pack)
            told.add(trial.number)
            beats[trial.number].__exit__()
            ended.append((trial.number, result))
            if on_end is not None:
                on_end(trial.number, result)

        try:
            interrupts.allow()  # inside the try: a signal from here on marks these trials failed
            plans = []
            for t in trials:
                try:
                    plans.append(objective.plan(t))
                except Exception as err:  # noqa: BLE001 - rejected (pruned) or a failing space: that trial's outcome
                    settle(t, err)
            objective.train(plans, lambda plan, outcome: settle(plan.trial, outcome))
        except BaseException as err:  # an interrupt, or an error no trial owns (the database lost while telling one)
            reason = (f"interrupted ({interrupts.describe(getattr(err, 'signum', signal.SIGINT))})"
                      if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}")
            for t in trials:
                if t.number not in told:
                    # finished meanwhile (the signal came during its tell, or it surfaced there), or the
                    # database is gone (then the heartbeat goes stale and a later run fails it): as it is
                    with suppress(Exception):
                        trial_failed(study, t, reason)
            raise
    return ended


def trial_failed(study: optuna.Study, trial: optuna.Trial, error: str) -> None:
    put_attrs(trial, error=error)
    study.tell(trial, state=TrialState.FAIL)


def _settle(study: optuna.Study, trial: optuna.Trial, outcome: Outcome, pack: list[int]) -> Ended:
    try:
        return _tell(study, trial, outcome, pack)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Another worker failed this trial as stale (our heartbeats could not reach the
        # database for a grace period) and re-queued its parameters: let that copy run.
        return TrialState.FAIL, None, "abandoned: failed as stale while its heartbeats were lost; re-queued"


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome, pack: list[int]) -> Ended:
    """Record a trial's outcome in the study: its value, pruned, or failed with the cause."""
    if isinstance(outcome, optuna.exceptions.UpdateFinishedTrialError):
        raise outcome
    if isinstance(outcome, optuna.TrialPruned):
        frozen = study.tell(trial, state=TrialState.PRUNED)
        return frozen.state, primary_value(frozen), None
    if isinstance(outcome, torch.OutOfMemoryError):  # not a crash: re-queued if co-tenants took the memory (hpsearch.run.oom)
        outcome.__traceback__ = None  # its frames hold the failed step's tensors: released before the cache is emptied
        message, requeued = oom.handle(study, trial, outcome, pack)
        oom.free_cuda_memory()
        trial_failed(study, trial, message)
        return TrialState.FAIL, None, REQUEUED if requeued else message
    if isinstance(outcome, BaseException):  # a crashing trial is data, recorded with its cause
        signum = interrupts.received()
        if signum is not None:  # the signal surfaced as another error: psycopg turns a Ctrl-C during a
            # query into QueryCanceled ("canceling statement due to user request"); it is the interrupt
            trial_failed(study, trial, f"interrupted ({interrupts.describe(signum)})")
            raise interrupts.Interrupted(signum) from outcome
        message = f"{type(outcome).__name__}: {outcome}"
        put_attrs(trial, traceback="".join(traceback.format_exception(outcome))[-4000:])
        trial_failed(study, trial, message)
        return TrialState.FAIL, None, message
    frozen = study.tell(trial, outcome)
    return frozen.state, primary_value(frozen), None


def _parent_alive() -> bool:
    parent = mp.parent_process()
    return parent is None or parent.is_alive()


def _context() -> mp.context.ForkServerContext | mp.context.SpawnContext:
    """``forkserver`` where there is one (Linux, macOS), else ``spawn``; never plain ``fork``.

    A fork of the supervisor would inherit its OpenMP pool and CUDA state. The fork server is a
    fresh process that only imports (``run/_forkserver.py``), so its forks start with torch
    loaded and nothing initialised.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["hpsearch.run._forkserver"])
    return ctx


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """A Ctrl-C reaches the whole process group, new workers still starting included, where it
    would print a KeyboardInterrupt traceback. A process started in here inherits SIGINT blocked
    (the mask survives fork and exec) and unblocks it once its handler is in place
    (``worker_main``); a Ctrl-C meanwhile stays pending and is handled then. Blocking, unlike
    ignoring, loses none for the supervisor."""
    blocked = hasattr(signal, "pthread_sigmask")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blocked else None
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def start_server() -> None:
    """Start the fork server now, so it imports torch while the supervisor prepares the data and
    the study (called early in a run; :meth:`WorkerPool.start` would start it otherwise)."""
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        with _sigint_blocked():  # its forks inherit the mask: see _sigint_blocked
            forkserver.ensure_running()


class WorkerPool:
    """Worker processes sharing one event queue and one stop flag, forked from the fork server
    (``_context``)."""

    def __init__(self) -> None:
        self._ctx = _context()
        self.events: Queue = self._ctx.Queue()
        self.stop: Event = self._ctx.Event()
        self.procs: dict[int, mp.process.BaseProcess] = {}
        self.jobs: dict[int, WorkerJob] = {}

    def start(self, job: WorkerJob) -> None:
        job = replace(job, environ=dict(os.environ))
        p = self._ctx.Process(target=worker_main, args=(job, self.events, self.stop),
                              name=f"hpsearch-worker-{job.index}")
        with _sigint_blocked():  # a spawned worker, or the fork server on its first start
            p.start()
        self.procs[job.index], self.jobs[job.index] = p, job

    def any_alive(self) -> bool:
        return any(p.is_alive() for p in self.procs.values())

    def killed(self) -> list[int]:
        """Workers that died from a signal they did not handle (``kill -9``, the OOM killer) or
        were stopped on their own by SIGTERM (exit 143): both get replaced while the run goes on."""
        return [i for i, p in self.procs.items() if not p.is_alive()
                and ((p.exitcode or 0) < 0 or p.exitcode == interrupts.exit_code(signal.SIGTERM))]

    def interrupt(self, grace: float) -> list[int]:
        """Ask every worker to stop now (their running trials get marked failed), then wait.

        Returns the workers still alive after ``grace`` and killed: on a loaded machine a worker
        can take longer to write its trial's failure, and the supervisor marks that trial itself.
        """
        self.stop.set()
        for p in self.procs.values():
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        for p in self.procs.values():
            p.join(max(0.0, deadline - time.monotonic()))
        killed = []
        for i, p in self.procs.items():
            if p.is_alive():
                p.kill()
                p.join()
                killed.append(i)
        return killed
