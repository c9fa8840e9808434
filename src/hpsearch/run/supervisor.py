"""`hpsearch run`: validate everything, create or join the study, supervise the workers.

Order matters for "nothing half-written": the module is imported, the data checked and the
storage opened *before* the study row exists; a run that then fails before its first
trial deletes the study it created. SIGTERM takes the same path as Ctrl-C (``interrupts``).
"""

from __future__ import annotations

import queue
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console

from hpsearch.data import prepare, read_checked
from hpsearch.errors import BadOption, HpsearchError, StorageError, TrialsFailing
from hpsearch.fmt import pack
from hpsearch.run import interrupts
from hpsearch.run.allocation import allocate
from hpsearch.run.workers import WorkerJob, WorkerPool, start_server
from hpsearch.store import budget
from hpsearch.store.budget import FINISHED_STATES
from hpsearch.store.compat import storage_of
from hpsearch.store.paths import check_name
from hpsearch.store.queries import pareto_front, recorded
from hpsearch.store.records import FINGERPRINT, SETTINGS, fail_frozen, study_get
from hpsearch.store.storage import grace_period, heartbeat_interval, mask, open_storage
from hpsearch.study import discover
from hpsearch.study.declaration import StoredSettings
from hpsearch.study.fingerprint import differences, fetch_models, fingerprint
from hpsearch.study.rebuild import check_data_hash
from hpsearch.study.samplers import SamplerSpec, check_grid
from hpsearch.study.seeds import derive_seed
from hpsearch.train.loop import resolve_device
from hpsearch.train.options import Speedups
from hpsearch.views.progress import Running, RunState, RunView

STOP_GRACE_S = 10.0  # how long interrupted workers get to mark their trials failed
# after --deadline, trials stop at their epoch's end; one still inside an epoch this much later is interrupted
DEADLINE_GRACE_S = 30.0
MAX_RESTARTS = 10  # replacements for killed workers in one run, so a crash loop cannot spin forever
MAX_TRIALS = 10**9  # --n-trials above this is a typo (10**23 was accepted and stored as the budget)


@dataclass(frozen=True)
class RunRequest:
    study: str
    storage: str
    data_root: Path
    workers: int | str = 1  # or "auto" (workers.auto_workers)
    n_trials: int | None = None
    timeout: float | None = None
    deadline: float | None = None  # seconds after which running trials stop too (at their epoch's end)
    seed: int | None = None
    device: str = "auto"
    studies_dir: Path | None = None
    name: str | None = None
    pruner: str = "median"
    allow_module_change: bool = False
    allow_data_change: bool = False
    sampler: str | None = None  # overrides the module's sampler when the study is created
    trials_per_worker: int = 1  # trials a worker trains at once (workers.take_trials, Objective.train)
    speedups: Speedups = Speedups()  # fusion and capture, resolved by the CLI (Speedups.from_env)
    cpu_slots: int | None = None  # CPU trials that may train at once (None: the cores; 0: no limit)


@dataclass
class RunResult:
    study_name: str
    n_trials: int
    started: int  # trials this run started
    states: dict[str, int] = field(default_factory=dict)
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    metric: str = "val_top1"
    front: list[int] = field(default_factory=list)  # several objectives: the Pareto-optimal trials
    objectives: list[str] = field(default_factory=list)
    retrained_trial: int | None = None  # the trial the study's retrain record is for, if it has one
    elapsed: float = 0.0
    interrupted: bool = False
    exit_code: int = 0  # 130 after Ctrl-C, 143 after SIGTERM


def run(req: RunRequest, console: Console | None = None) -> RunResult:
    with interrupts.handled():
        return _run(req, console or Console(markup=False))


def _run(req: RunRequest, console: Console) -> RunResult:
    if req.workers != "auto" and (not isinstance(req.workers, int) or req.workers < 1):
        raise BadOption(f"--workers must be >= 1 or auto, got {req.workers}")
    if not isinstance(req.trials_per_worker, int) or req.trials_per_worker < 1:
        raise BadOption(f"--trials-per-worker must be >= 1, got {req.trials_per_worker}")
    if req.n_trials is not None and not 1 <= req.n_trials <= MAX_TRIALS:
        raise BadOption(f"--n-trials must be between 1 and {MAX_TRIALS:,} (a budget beyond any study's life), "
                        f"got {req.n_trials:,}")
    if req.timeout is not None and not req.timeout > 0:  # `not >` also refuses NaN
        raise BadOption(f"--timeout must be > 0 seconds, got {req.timeout:g}; leave it out to run "
                        "until the budget is met")
    if req.deadline is not None and not req.deadline > 0:
        raise BadOption(f"--deadline must be > 0 seconds, got {req.deadline:g}; leave it out to run "
                        "until the budget is met")
    try:
        device = resolve_device(req.device)  # once: "auto" becomes the device every worker is placed on
    except ValueError as err:
        raise HpsearchError(str(err)) from None
    loaded = discover.load(req.study, req.studies_dir)
    name = check_name(req.name or loaded.name)
    start_server()  # the workers' imports, in the background while the data and the study are prepared
    data_hash = prepare(loaded.study.data, req.data_root)  # files checked, decoded once, hashed
    fp = discover.probe(loaded, fingerprint)  # runs the space function: fails early if it is broken
    _check_sampler(req, loaded)
    fetch_models(loaded.study)  # pretrained weights: downloaded once here, or named as missing
    storage = open_storage(req.storage, create=True)
    _, _, train_digest = read_checked(loaded.study.data, req.data_root)  # recorded if this run creates the study
    settings, created = _create_or_join(storage, req, loaded, name, fp, data_hash, train_digest)
    if settings.train_digest not in (None, train_digest):  # the decoded split differs from the study's record
        _, _, train_digest = read_checked(loaded.study.data, req.data_root, settings.train_digest,
                                          lambda m: print(m, file=sys.stderr),
                                          None if req.allow_data_change else settings.data_hash)
    study = optuna.load_study(study_name=name, storage=storage)
    try:
        return _supervise(req, device, loaded, study, storage, settings, console, train_digest)
    except BaseException:
        if created and not study.get_trials(deepcopy=False):
            optuna.delete_study(study_name=name, storage=storage)
        raise


def _create_or_join(storage: optuna.storages.BaseStorage, req: RunRequest, loaded: discover.LoadedStudy,
                    name: str, fp: dict[str, Any], data_hash: str | None,
                    train_digest: str) -> tuple[StoredSettings, bool]:
    """Create the study with its settings atomically, or check a joining run agrees with it.

    The study and its settings appear in one step under the budget lock
    (:func:`budget.create_if_absent`), so a joining run reads complete settings afterwards.
    """
    settings = StoredSettings.of(loaded.study, 0 if req.seed is None else req.seed, loaded.name, str(loaded.path),
                                 data_hash, SamplerSpec(req.sampler) if req.sampler else None, train_digest)
    if budget.create_if_absent(storage, req.storage, name, settings.directions, list(settings.objectives),
                               {SETTINGS: settings.to_dict(), FINGERPRINT: fp}):
        return settings, True
    study = optuna.load_study(study_name=name, storage=storage)
    if study_get(study, SETTINGS) is None:
        raise StorageError(f"study {name!r} in {mask(req.storage)} was not created by hpsearch; "
                           "pass --name NEW_NAME to start a separate study")
    stored = StoredSettings.from_dict(study_get(study, SETTINGS))
    _check_compatible(stored, loaded, req, name)
    _check_fingerprint(study_get(study, FINGERPRINT, {}), fp, loaded, req, name)
    warning = check_data_hash(stored, data_hash, req.allow_data_change, f"study {name!r}")
    if warning:
        print(warning, file=sys.stderr)
    return stored, False


def _check_compatible(stored: StoredSettings, loaded: discover.LoadedStudy, req: RunRequest,
                      name: str) -> None:
    # a module that names no sampler joins whatever the study was created with (--sampler included)
    sampler = SamplerSpec(req.sampler) if req.sampler else (loaded.study.sampler or stored.sampler)
    mine = StoredSettings.of(loaded.study, stored.seed if req.seed is None else req.seed, loaded.name,
                             sampler=sampler)
    diffs = stored.differences(mine)
    if diffs:
        raise HpsearchError(f"study {name!r} already exists with other settings ({'; '.join(diffs)}); "
                            "pass --name NEW_NAME to start a separate study")


def _check_sampler(req: RunRequest, loaded: discover.LoadedStudy) -> None:
    try:
        if req.sampler is not None:
            SamplerSpec(req.sampler).check()
            if req.sampler == "cmaes" and loaded.study.metrics:
                raise ValueError("--sampler cmaes optimises one objective; this study has "
                                 f"{len(loaded.study.metrics)} ({', '.join(loaded.study.metrics)}): use nsga2, tpe "
                                 "or random")
            if req.sampler == "grid":
                raise ValueError("--sampler grid needs the cells: declare Study(sampler=samplers.grid({...}))")
        if loaded.study.sampler is not None and loaded.study.sampler.kind == "grid" and req.sampler is None:
            check_grid(loaded.study.sampler, loaded.study.space)
    except ValueError as err:
        raise HpsearchError(f"{loaded.path.name}: {err}") from None


def _check_fingerprint(stored: dict[str, Any], current: dict[str, Any], loaded: discover.LoadedStudy,
                       req: RunRequest, name: str) -> None:
    diffs = differences(stored, current)
    if not diffs:
        return
    what = f"{loaded.path.name} differs from the module study {name!r} was created with: {'; '.join(diffs)}"
    if not req.allow_module_change:
        raise HpsearchError(f"{what}; pass --allow-module-change to join anyway, or --name NEW_NAME "
                            "to start a separate study")
    print(f"warning: {what} (joining anyway: --allow-module-change)", file=sys.stderr)


def _supervise(req: RunRequest, device: torch.device, loaded: discover.LoadedStudy, study: optuna.Study,
               storage: optuna.storages.BaseStorage, settings: StoredSettings, console: Console,
               train_digest: str) -> RunResult:
    grid_size = len(settings.sampler.cells()) if settings.sampler.kind == "grid" else None
    total = req.n_trials or grid_size or loaded.study.n_trials  # a grid's budget is its size
    state = RunState(study.study_name, settings.metric, total, settings.max_epochs)
    result = RunResult(study.study_name, total, 0, metric=settings.metric)
    finished, running = _reclaim(study, storage, req.storage, console)
    _poll(study, state)
    if finished >= total:
        console.print(f"{study.study_name}: budget reached ({finished}/{total} finished); "
                      "nothing to run — raise --n-trials to search more", highlight=False, soft_wrap=True)
        return _finish(study, state, result)
    remaining = total - finished - running
    if remaining <= 0:
        console.print(f"{study.study_name}: {running} running trial(s) hold the rest of the budget "
                      f"({finished}/{total} finished); one worker waits for them (a trial without a heartbeat "
                      f"for {grace_period()}s is failed and retried)", highlight=False, soft_wrap=True)
    alloc = allocate(device, req.workers, remaining, study, req.cpu_slots)
    n, slots = alloc.workers, alloc.slots
    now = time.time()
    stop_at = None if req.deadline is None else now + req.deadline  # running trials stop too
    deadline = min((t for t in (None if req.timeout is None else now + req.timeout, stop_at) if t is not None),
                   default=None)  # no new trial after it
    existing = len(study.get_trials(deepcopy=False))
    slot_tmp = tempfile.TemporaryDirectory(prefix="hpsearch-cpu-slots-") if slots else None
    slot_dir = slot_tmp.name if slot_tmp is not None else None
    jobs = [
        WorkerJob(index=i, study_path=str(loaded.path), study_name=study.study_name,
                  storage_url=req.storage, n_trials=total, deadline=deadline, device=dev,
                  threads=alloc.threads, data_root=str(req.data_root),
                  sampler_seed=derive_seed(settings.seed, "sampler", i, existing), pruner=req.pruner,
                  allow_module_change=req.allow_module_change, cpu_slots=slot_dir, n_slots=slots,
                  trials_per_worker=req.trials_per_worker, speedups=req.speedups, train_digest=train_digest,
                  stop_at=stop_at)
        for i, dev in enumerate(alloc.devices)
    ]
    parts = [f"{study.study_name}:", f"{n} worker(s) × {jobs[0].threads} thread(s) on {jobs[0].device},",
             *([f"up to {req.trials_per_worker} trials each at once,"] if req.trials_per_worker > 1 else []),
             f"budget {total} trials ({state.finished} finished),", f"storage {mask(req.storage)}",
             *([f"({slots} train at once: {slots} cores)"] if slots else [])]
    for line in pack(parts, console.width):
        console.print(line, highlight=False, overflow="fold")
    state.workers, state.finished_at_start = n, state.finished
    state.timeout = None if req.timeout is None else req.timeout + state.elapsed
    pool = WorkerPool()
    for job in jobs:
        pool.start(job)
    errors = _watch(pool, study, state, result, console, req.storage, stop_at)
    if stop_at is not None and time.time() >= stop_at and not result.interrupted:
        console.print(f"{study.study_name}: --deadline of {req.deadline:g}s reached: trials still training were "
                      "stopped at the end of their epoch and recorded as pruned there; rerun to search further",
                      highlight=False, soft_wrap=True)
    for i, p in pool.procs.items():
        p.join()
        if (p.exitcode or 0) > 0 and p.exitcode not in (130, 143) and not errors and not result.interrupted:
            errors.append((f"worker {i} exited with code {p.exitcode}", None))
    if slot_tmp is not None:
        slot_tmp.cleanup()
    _finish(study, state, result)
    if errors and not result.interrupted:
        message, trace = errors[0]
        raise TrialsFailing(message, detail=trace)
    return result


def _watch(pool: WorkerPool, study: optuna.Study, state: RunState, result: RunResult,
           console: Console, url: str, stop_at: float | None = None) -> list[tuple[str, str | None]]:
    """Follow the workers until they are done: their events into the view, killed ones replaced
    (at most MAX_RESTARTS), the study polled for trials other machines finish; on Ctrl-C or
    SIGTERM stop them and fail what they left running. Returns the errors that stop the run."""
    errors: list[tuple[str, str | None]] = []  # (one line, the worker's traceback if it crashed)
    restarts = 0
    with RunView(state, console) as view:
        try:
            last_poll = last_reclaim = time.monotonic()
            while True:
                if (signum := interrupts.received()) is not None:
                    raise interrupts.Interrupted(signum)  # its first raise was swallowed (in a __del__)
                alive = pool.any_alive()
                drained = _drain(pool.events, study, state, view, errors, result,
                                 timeout=0.25 if alive else 0.0)
                if errors:
                    pool.stop.set()
                for i in pool.killed():
                    if pool.stop.is_set() or restarts >= MAX_RESTARTS:
                        continue
                    restarts += 1
                    code = pool.procs[i].exitcode or 0
                    if code < 0:  # killed outright: its trials are failed and re-queued here, now (budget.fail_dead)
                        mine = {n for n, r in state.running.items() if r.worker == i}
                        retried = budget.fail_dead(study, mine, f"worker killed (signal {-code})")
                        what = ("its trials are retried once their heartbeat is stale (the proxy's grace period)"
                                if retried is None else f"trial(s) {', '.join(map(str, retried))} failed and re-queued"
                                if retried else "no trial was running")
                        view.message(f"worker {i} was killed (signal {-code}): {what}; starting a replacement")
                    else:
                        view.message(f"worker {i} was stopped (SIGTERM); starting a replacement — its trial was "
                                     "marked failed and does not count")
                    _forget_running(state, i)
                    pool.start(pool.jobs[i])
                    alive = True
                if time.monotonic() - last_poll > 1.0:
                    _poll(study, state)
                    last_poll = time.monotonic()
                if time.monotonic() - last_reclaim > heartbeat_interval():
                    _reclaim_quietly(study, url)
                    last_reclaim = time.monotonic()
                if stop_at is not None and alive and time.time() > stop_at + DEADLINE_GRACE_S:
                    # a trial still inside an epoch long after the deadline: stopped as Ctrl-C stops it
                    reason = "stopped at the --deadline inside an epoch"
                    view.message(f"deadline passed {DEADLINE_GRACE_S:.0f}s ago: {reason}; stopping workers …")
                    killed = pool.interrupt(STOP_GRACE_S)
                    _drain(pool.events, study, state, view, errors, result, timeout=0.0)
                    _fail_left_running(study, state, killed, reason)
                    stop_at = None
                view.refresh()
                if not alive and not drained:
                    break
        except KeyboardInterrupt as err:
            result.interrupted, result.exit_code = True, interrupts.exit_code(err)
            reason = f"interrupted ({interrupts.describe(result.exit_code - 128)})"  # as workers record it
            view.message(f"{reason}: stopping workers and marking their running trials failed …")
            killed = pool.interrupt(STOP_GRACE_S)
            _drain(pool.events, study, state, view, errors, result, timeout=0.0)
            _fail_left_running(study, state, killed, reason)
        except BaseException:
            pool.interrupt(STOP_GRACE_S)  # never leave workers behind when the supervisor fails
            raise
    return errors


def _reclaim(study: optuna.Study, storage: optuna.storages.BaseStorage, url: str,
             console: Console) -> tuple[int, int]:
    """Fail trials whose workers are dead, then count (finished, running) in one snapshot.

    Only workers used to fail stale trials, so after `kill -9` of a whole run its RUNNING
    trials held the budget and a rerun started no worker: "budget reached (4/6 finished)"
    for ever. The supervisor now does it first, under the budget lock, as a worker would.
    """
    before, counts = budget.reclaim(study, storage, url)
    running = counts.get(TrialState.RUNNING.name, 0)
    if running < before:
        console.print(f"{study.study_name}: failed {before - running} abandoned trial(s) (no heartbeat for "
                      f"{grace_period()}s); their parameters are retried", highlight=False, soft_wrap=True)
    return sum(counts.get(s.name, 0) for s in FINISHED_STATES), running


def _reclaim_quietly(study: optuna.Study, url: str) -> None:
    """Fail stale trials on the supervisor's own clock, every heartbeat interval: a worker that
    died on another machine (or one this supervisor did not see die) has its trials failed and
    re-queued within the grace period, not whenever some worker next asks for a trial. The
    workers do the same before each ask; a database that is away for a moment is their concern
    (their retries decide when it is an error), so a failure here only waits for the next tick."""
    try:
        budget.reclaim(study, storage_of(study), url)
    except Exception:  # noqa: BLE001 - see above: never the reason a run stops
        pass


def _fail_left_running(study: optuna.Study, state: RunState, killed: list[int], error: str) -> None:
    """Fail the trials of workers killed after the stop grace, as they would have themselves.

    Without this a worker too slow to stop (a loaded machine) left its trial RUNNING until a
    later run found its heartbeat stale; the supervisor knows that worker is dead now.
    """
    numbers = {n for n, r in state.running.items() if r.worker in killed}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in numbers:
            fail_frozen(study, t, error)


def _forget_running(state: RunState, worker: int) -> None:
    for number in [n for n, r in state.running.items() if r.worker == worker]:
        del state.running[number]


def _drain(events: Any, study: optuna.Study, state: RunState, view: RunView, errors: list[tuple[str, str | None]],
           result: RunResult, timeout: float) -> bool:
    """Apply every queued worker event to the view state; True if anything arrived."""
    got = False
    while True:
        try:
            evt = events.get(timeout=timeout) if timeout and not got else events.get_nowait()
        except queue.Empty:
            return got
        got = True
        kind, worker = evt[0], evt[1]
        if kind == "start":
            state.trial_started = True
            state.running[evt[2]] = Running(worker)
            result.started += 1
        elif kind == "epoch":
            r = state.running.setdefault(evt[2], Running(worker))
            r.epoch, r.value = evt[3], evt[4]
        elif kind == "end":
            state.running.pop(evt[2], None)
            _poll(study, state)
            view.trial_ended(evt[2], evt[3], evt[4])
        elif kind == "error":
            errors.append((evt[2], evt[3] if len(evt) > 3 else None))


def _poll(study: optuna.Study, state: RunState) -> None:
    """Counts and best from the database: the truth when other machines share the study."""
    trials = study.get_trials(deepcopy=False)
    state.finished = sum(t.state in FINISHED_STATES for t in trials)
    state.pruned = sum(t.state == TrialState.PRUNED for t in trials)
    state.failed = sum(t.state == TrialState.FAIL for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if complete:  # the study metric's best (the first objective's, with several)
        pick = min if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else max
        best = pick(complete, key=lambda t: t.values[0])
        state.best, state.best_number = best.values[0], best.number


def _finish(study: optuna.Study, state: RunState, result: RunResult) -> RunResult:
    _poll(study, state)
    trials = study.get_trials(deepcopy=False)
    result.states = {s.name: sum(t.state == s for t in trials) for s in TrialState
                     if any(t.state == s for t in trials)}
    result.best_number, result.best_value = state.best_number, state.best
    if len(study.directions) > 1:
        result.front = sorted(t.number for t in pareto_front(study))
        result.objectives = list(study.metric_names or [])
    elif state.best_number is not None:
        result.best_params = next(dict(t.params) for t in trials if t.number == state.best_number)
    result.retrained_trial = (recorded(study) or {}).get("trial")
    result.elapsed = state.elapsed
    return result
