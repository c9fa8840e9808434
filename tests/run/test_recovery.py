"""Interrupts and crashes with real signals on real `hpsearch run` processes.

Tests wait on what the database shows (a trial RUNNING, with an epoch reported and a
heartbeat recorded), never on sleeps, and assert what matters: no trial lost, nothing left
RUNNING, the same command resumes.
"""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from conftest import Work
from processes import (
    all_trials,
    assert_resumed,
    group_alive,
    owned,
    rerun,
    start_run,
    wait_for,
    wait_running,
)

pytestmark = pytest.mark.slow


def test_ctrl_c_stops_quickly_leaves_nothing_running_and_resumes(store: Work) -> None:
    """Started with SIGINT ignored, as a script's `run &` is: the supervisor still stops (it used to
    sleep through the Ctrl-C its workers obeyed and exit 0 — the flake seen under load)."""
    work = store
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "2", "--pruner", "none", sigint_ignored=True)
    wait_running(proc, work)
    os.killpg(proc.pid, signal.SIGINT)
    # the supervisor gives workers STOP_GRACE_S (10 s), then kills them: the limit only bounds a hang
    # (a wall-clock bound here failed under load; what matters is that no worker outlives the run)
    out, _ = proc.communicate(timeout=120)
    # the group empties: multiprocessing's resource tracker leaves a moment after the supervisor
    wait_for(lambda: not group_alive(proc.pid), timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted (Ctrl-C): stopping workers" in out
    assert "rerun the same command to resume" in out and "Traceback" not in out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["error"] == "interrupted (Ctrl-C)" for t in interrupted)
    assert_resumed(work, 2)


def test_sigterm_to_run_stops_it_like_ctrl_c(store: Work) -> None:
    """`docker stop` sends SIGTERM to the supervisor alone: message, trials marked, 143, resumes."""
    work = store
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "2", "--pruner", "none")
    wait_running(proc, work)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert "interrupted (SIGTERM): stopping workers" in out and "rerun the same command to resume" in out
    assert "Traceback" not in out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    errors = [(t.number, t.user_attrs.get("error")) for t in interrupted]
    assert interrupted and all(str(e).startswith("interrupted") for _, e in errors), (errors, out)
    assert_resumed(work, 2)


def test_a_worker_too_slow_to_stop_has_its_trial_marked_by_the_supervisor(work: Work) -> None:
    """A loaded machine can keep a worker from writing its trial's failure within the stop grace:
    frozen here (SIGSTOP) so it cannot. The supervisor kills it after the grace and marks the
    trial itself, so nothing is left RUNNING for a later run to find stale."""
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "2", "--pruner", "none")
    frozen = wait_running(proc, work)
    for t in frozen:
        os.kill(int(t.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out
    by_number = assert_failed_as_interrupted(work, frozen, out)
    assert all(by_number[t.number].user_attrs["error"] == "interrupted (SIGTERM)" for t in frozen), out


def test_sigterm_fails_every_trial_a_worker_trains_at_once(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker holding two trials (``--trials-per-worker 2``, fused into one model): SIGTERM marks
    both failed, not just the one it was training when the signal came."""
    monkeypatch.setenv("HPSEARCH_FUSE", "1")
    proc = start_run(work, "slow", "--n-trials", "2", "--trials-per-worker", "2", "--pruner", "none")
    pack = wait_running(proc, work, n=2)
    assert len({t.user_attrs["worker"] for t in pack}) == 1 and all("fused_with" in t.user_attrs for t in pack)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert_failed_as_interrupted(work, pack, out)


def assert_failed_as_interrupted(work: Work, trials: list[optuna.trial.FrozenTrial],
                                 out: str) -> dict[int, optuna.trial.FrozenTrial]:
    """Each of ``trials`` failed with an "interrupted" error and nothing is left RUNNING; returns
    the study's trials by number."""
    by_number = {t.number: t for t in all_trials(work)}
    for t in trials:
        assert by_number[t.number].state == TrialState.FAIL, out
        assert str(by_number[t.number].user_attrs["error"]).startswith("interrupted"), out
    assert not [t for t in by_number.values() if t.state == TrialState.RUNNING], out
    return by_number


def test_a_run_killed_with_all_its_workers_resumes(store: Work) -> None:
    """kill -9 of the whole process group while the last trials of the budget run: the rerun fails
    the abandoned trials itself (no worker is left to do it) and finishes the budget."""
    work = store
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "2", "--pruner", "none")

    def budget_taken() -> list[optuna.trial.FrozenTrial]:
        # both trials running, or the first finished and the second running (the second worker
        # may start after the first took both: which one happens depends on the machine's load)
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}):\n{proc.communicate()[0]}")
        trials = all_trials(work)  # one snapshot for both counts
        running = owned(trials, work)
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        return running if running and len(running) + len(finished) >= 2 else []
    killed = wait_for(budget_taken, timeout=420)  # bounds a hang only (see wait_running)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    out = rerun(work, 2, grace=4)
    assert "budget reached" not in out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    by_number = {t.number: t for t in trials}
    assert all(by_number[t.number].state == TrialState.FAIL for t in killed), out
    retried = [t for t in trials if t.system_attrs.get("failed_trial") in {k.number for k in killed}]
    assert sorted(t.params["lr"] for t in retried) == sorted(k.params["lr"] for k in killed)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], out


def test_sigterm_to_one_worker_replaces_it(store: Work) -> None:
    work = store
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "2", "--pruner", "none")
    victim = wait_running(proc, work)[0]
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "was stopped (SIGTERM); starting a replacement" in out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[victim.number].state == TrialState.FAIL
    assert by_number[victim.number].user_attrs["error"] == "interrupted (SIGTERM)"
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_worker_killed_mid_trial_is_replaced_and_its_trial_rerun(store: Work) -> None:
    work = store
    proc = start_run(work, "slow", "--workers", "2", "--n-trials", "2", "--pruner", "none")
    victim = wait_running(proc, work)[0]
    pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    said = " ".join(out.split())  # the live view wraps long lines at the terminal's width
    assert "was killed (signal 9): trial(s) " in said and "failed and re-queued; starting a replacement" in said, out
    trials = optuna.load_study(study_name="slow", storage=work.url).get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[victim.number].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == victim.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_killed_workers_pack_is_failed_at_once_and_retried_as_a_pack(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of a worker holding two trials: they stayed RUNNING until some worker next asked
    for a trial (~12 minutes once) and came back one at a time (issue 34, attack 5). With a grace
    period far longer than the run, only the supervisor's own clock can fail them."""
    monkeypatch.setenv("HPSEARCH_FUSE", "1")
    proc = start_run(work, "slow", "--n-trials", "2", "--trials-per-worker", "2", "--pruner", "none", grace=3600)
    pack = wait_running(proc, work, n=2)
    (worker,) = {t.user_attrs["worker"] for t in pack}
    os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    said = " ".join(out.split())  # the live view wraps long lines at the terminal's width
    assert "was killed (signal 9): trial(s) " in said and "failed and re-queued" in said, out
    trials = all_trials(work)
    assert sorted(t.number for t in trials if t.state == TrialState.FAIL) == sorted(t.number for t in pack)
    assert all(t.user_attrs["error"] == "worker killed (signal 9)" for t in trials if t.state == TrialState.FAIL)
    retried = [t for t in trials if t.system_attrs.get("failed_trial") in {p.number for p in pack}]
    assert len(retried) == 2 and all(t.state == TrialState.COMPLETE and "error" not in t.user_attrs for t in retried)
    assert len({t.user_attrs["worker"] for t in retried}) == 1 and all("fused_with" in t.user_attrs for t in retried)
    assert {tuple(sorted(t.params.items())) for t in retried} == {tuple(sorted(t.params.items())) for t in pack}


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
