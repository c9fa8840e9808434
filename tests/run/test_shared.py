"""Many processes, one study: separate runs joining, SQLite under load, changed modules."""

from __future__ import annotations

import shutil
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from conftest import FIXTURE_STUDIES, REPO, Work

pytestmark = pytest.mark.slow


def run_cmd(cwd, url: str, *args: str) -> subprocess.Popen[str]:  # noqa: ANN001
    return subprocess.Popen([sys.executable, "-m", "hpsearch", "run", *args, "--storage", url], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_machines_share_one_budget(store: Work, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two `run` commands from two working directories join one study and split its budget."""
    dirs = []
    for box in ("box-a", "box-b"):
        d = tmp_path_factory.mktemp(box)
        shutil.copytree(REPO / "studies", d / "studies")
        shutil.copy(FIXTURE_STUDIES / "paired.py", d / "studies" / "paired.py")
        dirs.append(d)
    # One worker per box (how many each box runs is not the point; fewer processes on 2 cores).
    # `paired`'s trial 0 waits until a second trial is RUNNING: the box that took it cannot take
    # another, so the other box's worker must, however late it starts on a loaded machine (with
    # `slow` trials one box sometimes finished all four before the other had imported torch).
    procs = [run_cmd(d, store.url, "paired", "--workers", "1", "--n-trials", "4", "--pruner", "none") for d in dirs]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = optuna.load_study(study_name="paired", storage=store.url).get_trials()
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    pids = {t.user_attrs["worker"] for t in trials}
    assert len(pids) == 2  # the one worker of each box took trials
    assert all("pg-S3cret-pw" not in o for o in outs)


def test_sqlite_holds_16_workers_on_short_trials(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_CPU_SLOTS", "0")  # all 16 at once: the point is database contention
    # 64 trials, 4 per worker: every worker asks, tells and beats under contention several times
    # (the 200 this used to run spent most of their time training, not in the database)
    n = 64
    r = work.cli("run", "quick", "--workers", "16", "--n-trials", str(n), "--pruner", "none")
    trials = optuna.load_study(study_name="quick", storage=work.url).get_trials()
    states = {s: sum(t.state == s for t in trials) for s in TrialState}
    assert states[TrialState.COMPLETE] == n and states[TrialState.FAIL] == 0, r.output
    assert len(trials) == n
    assert "locked" not in r.output
    # Every one of the 16 workers hit the database (the run exits 0 only if all of them ended
    # cleanly, and each asks under the budget lock at least once). How many of them got a trial
    # is incidental: under load a late worker can start after the others took all 200 (CI saw 15).
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len({t.user_attrs["worker"] for t in trials}) > 1


def test_a_changed_module_is_refused_unless_overridden(store: Work) -> None:
    work = store
    work.cli("run", "tiny", "--n-trials", "1")
    module = work.path / "studies" / "tiny.py"
    module.write_text(module.read_text().replace("1e-3, 1e-2", "1e-4, 1e-1"))
    r = work.cli("run", "tiny", "--n-trials", "2", expect=1)
    assert "tiny.py differs from the module study 'tiny' was created with: parameter lr changed: " \
           "[0.001, 0.01] log → [0.0001, 0.1] log" in r.output
    assert "--allow-module-change" in r.output
    assert len(optuna.load_study(study_name="tiny", storage=work.url).get_trials()) == 1
    module.write_text(module.read_text() + "\n# a comment\n")
    work.cli("run", "tiny", "--n-trials", "2", "--allow-module-change")
    assert len(optuna.load_study(study_name="tiny", storage=work.url).get_trials()) == 2
