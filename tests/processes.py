"""Real `hpsearch run` processes for tests: start one, and wait on what the database shows.

Shared by the crash-recovery, proxy and experiment tests. Every wait is on observable state (a
trial RUNNING with an epoch and a heartbeat, a predicate on the database), bounded only to turn
a hang into a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from conftest import Work


def start_run(work: Work, *args: str, grace: int = 8, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """`hpsearch run` in its own session, as a terminal would start it (Ctrl-C hits the group).

    ``sigint_ignored``: as `hpsearch run … &` in a script starts it, with SIGINT ignored (a
    non-interactive shell does that to background jobs; the child inherits it).
    """
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "hpsearch", "run", *args], cwd=work.path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=ignore_sigint if sigint_ignored else None,
                            env={**os.environ, "HPSEARCH_STORAGE": work.url, "HPSEARCH_GRACE_S": str(grace)})


def wait_for(predicate, timeout: float = 60.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def wait_running(proc: subprocess.Popen[str], work: Work, n: int = 1) -> list[optuna.trial.FrozenTrial]:
    """Wait until ``n`` trials are RUNNING with an epoch reported and a heartbeat recorded; fail with
    the run's output if it ended first. The limit only bounds a hang: a CI run beside a
    32-process benchmark (load average 33 on 2 cores) took over 120 s to start two workers."""
    def check() -> list[optuna.trial.FrozenTrial]:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}):\n{proc.communicate()[0]}")
        running = running_trials(work)
        return running if len(running) >= n else []
    return wait_for(check, timeout=420)


def running_trials(work: Work, name: str = "slow") -> list[optuna.trial.FrozenTrial]:
    return owned(all_trials(work, name), work)


def all_trials(work: Work, name: str = "slow") -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=work.url).get_trials()
    except KeyError:
        return []


def owned(trials: list[optuna.trial.FrozenTrial], work: Work) -> list[optuna.trial.FrozenTrial]:
    """The RUNNING trials that reported an epoch and have a heartbeat: a live worker owns them."""
    beating = heartbeats(work) if trials else set()
    return [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values and t._trial_id in beating]


def heartbeats(work: Work) -> set[int]:
    """Trial ids with a heartbeat row in Optuna's table (a worker owns the trial and is alive)."""
    engine = sqlalchemy.create_engine(work.url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as con:
            return {row[0] for row in con.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}
    finally:
        engine.dispose()


def group_alive(pgid: int) -> bool:
    """Whether any process of the run's session (its workers) still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def rerun(work: Work, n: int, grace: int = 8) -> str:
    """The same command again, to its end, in this process (the CLI's own entry, real spawned
    workers): nothing signals this run, and it saves a supervisor's start and imports (seconds
    on 2 cores). Returns its output; it must exit 0."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPSEARCH_STORAGE", work.url)
        mp.setenv("HPSEARCH_GRACE_S", str(grace))
        return work.cli("run", "slow", "--workers", "2", "--n-trials", str(n), "--pruner", "none").output


def assert_resumed(work: Work, n: int) -> list[optuna.trial.FrozenTrial]:
    """The same command again completes the budget: n COMPLETE, nothing RUNNING or WAITING."""
    out = rerun(work, n)
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n, out
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], out
    return trials
