"""Interrupts and crashes with real signals on real `hpsearch run` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from conftest import Work

pytestmark = pytest.mark.slow


def start_run(work: Work, *args: str, grace: int = 8) -> subprocess.Popen[str]:
    """`hpsearch run` in its own session, as a terminal would start it (Ctrl-C hits the group)."""
    return subprocess.Popen([sys.executable, "-m", "hpsearch", "run", *args], cwd=work.path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "HPSEARCH_STORAGE": work.url, "HPSEARCH_GRACE_S": str(grace)})


def wait_for(predicate, timeout: float = 60.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def wait_running(proc: subprocess.Popen[str], work: Work) -> list[optuna.trial.FrozenTrial]:
    """Wait until a trial has reported an epoch; fail with the run's output if it ended first."""
    def check() -> list[optuna.trial.FrozenTrial]:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}):\n{proc.communicate()[0]}")
        return running_trials(work)
    return wait_for(check, timeout=90)


def running_trials(work: Work, name: str = "slow") -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name=name, storage=work.url)
    except KeyError:
        return []
    return [t for t in study.get_trials() if t.state == TrialState.RUNNING and t.intermediate_values]


def test_ctrl_c_stops_quickly_leaves_nothing_running_and_resumes(store: Work) -> None:
    work = store
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "3", "--pruner", "none")
    wait_running(proc, work)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10, "workers must stop within a few seconds"
    assert proc.returncode == 130, out
    assert "rerun the same command to resume" in out and "Traceback" not in out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["error"] == "interrupted (Ctrl-C)" for t in interrupted)

    again = start_run(work, "slow", "--workers", "2", "--n-trials", "3", "--pruner", "none")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_a_worker_killed_mid_trial_is_replaced_and_its_trial_rerun(store: Work) -> None:
    work = store
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "3", "--pruner", "none")
    victim = wait_running(proc, work)[0]
    pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "was killed (signal 9); starting a replacement" in out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[victim.number].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == victim.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.postgres
def test_postgres_restarting_mid_run_loses_nothing(work: Work, pg) -> None:  # noqa: ANN001
    work.url = pg.create_database()
    # the default 20 s grace: a 5 s outage must not make live trials look abandoned
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "3", "--pruner", "none", grace=20)
    wait_running(proc, work)
    pg.stop()
    time.sleep(5)
    pg.restart()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "unreachable" in out and "retrying" in out and "pg-S3cret-pw" not in out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3


@pytest.mark.postgres
def test_a_database_that_stays_away_is_one_clear_error(work: Work, pg, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    work.url = pg.create_database()
    monkeypatch.setenv("HPSEARCH_DB_RETRY_S", "6")
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "3", "--pruner", "none")
    wait_running(proc, work)
    pg.stop()
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        pg.restart()
    assert proc.returncode == 1, out
    assert "error: lost the database postgresql+psycopg://postgres:***@127.0.0.1" in out
    assert "Traceback" not in out and "pg-S3cret-pw" not in out
