"""The read-only commands stay fast on big studies: no torch import, no scan for the best trial.

Studies here are written with Optuna's API (no training), shaped like hpsearch's own, and read
back by a real ``python -m hpsearch`` process whose ``torch`` import is made to fail: if
``best``, ``trials`` or ``studies`` ever pull in torch again (1.5 s per call), these fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from conftest import Work
from hpsearch.data import DataSpec
from hpsearch.store.queries import best_trial, ranked_trials
from hpsearch.store.records import SETTINGS
from hpsearch.study.declaration import StoredSettings

NO_TORCH = "raise ImportError('torch imported by a read-only command')\n"


def _study(url: str, values: list[float | None], name: str = "read") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    settings = StoredSettings(data=DataSpec("digits"), max_epochs=3, metric="val_top1", seed=0, module=name)
    study.set_user_attr(SETTINGS, settings.to_dict())
    dist = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    study.add_trials([
        create_trial(params={"lr": 1e-3 * (i + 1)}, distributions=dist, value=v,
                     state=TrialState.COMPLETE if v is not None else TrialState.PRUNED,
                     intermediate_values={1: v if v is not None else 0.1},
                     user_attrs={"epochs": 1, "seed": i})
        for i, v in enumerate(values)])
    return study


def _hpsearch_without_torch(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    blocker = tmp / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "torch.py").write_text(NO_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], capture_output=True, text=True, env=env,
                          cwd=tmp, timeout=120)


def test_the_blocker_does_block_torch(tmp_path: Path) -> None:
    """Negative control: a command that trains must fail under the same blocker."""
    r = _hpsearch_without_torch(tmp_path, "run", "digits", "--n-trials", "1", "--storage",
                                f"sqlite:///{tmp_path}/x.db")
    assert r.returncode != 0
    assert "torch imported by a read-only command" in r.stdout + r.stderr


@pytest.mark.parametrize("command", [["best", "read"], ["trials", "read", "--format", "csv"], ["studies"],
                                     ["best", "read", "--json"]])
def test_read_commands_do_not_import_torch(store: Work, command: list[str]) -> None:
    _study(store.url, [0.5, 0.9, None, 0.7])
    r = _hpsearch_without_torch(store.path, *command, "--storage", store.url)
    assert r.returncode == 0, r.stdout + r.stderr
    if command[0] == "best":
        assert ("0.9" if "--json" in command else "90.00 %") in r.stdout
    if command[0] == "trials":
        assert len(r.stdout.strip().splitlines()) == 1 + 4


def test_ties_rank_the_same_trial_first_everywhere(work: Work) -> None:
    """With tied values (common on small validation sets) `best` and retrain pick one trial."""
    study = _study(work.url, [0.8, 0.95, 0.6, 0.95, 0.95])
    ranked = ranked_trials(study)
    assert ranked[0].number == best_trial(study).number
    assert [t.value for t in ranked] == [0.95, 0.95, 0.95, 0.8, 0.6]
    assert sorted(t.number for t in ranked) == [0, 1, 2, 3, 4]
    shown = work.cli("best", "read", "--json").output
    assert f'"number": {best_trial(study).number}' in shown


def test_best_with_nothing_complete_says_so(work: Work) -> None:
    _study(work.url, [None, None])
    r = work.cli("best", "read", expect=1)
    assert "has no completed trial yet (2 pruned)" in r.output


def test_fast_rows_equal_optuna_api_rows(store: Work) -> None:
    """The direct table reads give exactly what Optuna's FrozenTrials give, every state and kind."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from hpsearch.store.rows import _rdb_counts, _rdb_rows, row_of, state_counts, trial_rows
    from hpsearch.store.storage import open_storage

    study = _study(store.url, [0.5, None, 0.9])
    dists = {"opt": CategoricalDistribution(["adam", "sgd", None]), "blocks": IntDistribution(1, 3),
             "lr": FloatDistribution(1e-4, 1e-1, log=True)}
    study.add_trial(create_trial(params={"opt": "sgd", "blocks": 2, "lr": 0.01}, distributions=dists,
                                 value=float("inf"), user_attrs={"n_params": 1234, "curves": {"x": [1.0] * 50}}))
    study.add_trial(create_trial(params={"opt": None, "blocks": 3}, distributions={k: dists[k] for k in ("opt", "blocks")},
                                 state=TrialState.FAIL, user_attrs={"error": "Diverged: loss is nan"}))
    running = study.ask({"lr": dists["lr"]})
    db = open_storage(store.url, create=False)
    loaded = optuna.load_study(study_name="read", storage=db)
    sid = db.get_study_id_from_name("read")
    fast = _rdb_rows(db, sid)  # called directly: a silent fallback would make this test vacuous
    slow = [row_of(t) for t in loaded.get_trials(deepcopy=False)]
    assert fast == slow == trial_rows(loaded, db)
    assert [r["state"] for r in fast] == ["COMPLETE", "PRUNED", "COMPLETE", "COMPLETE", "FAIL", "RUNNING"]
    assert fast[3]["params"] == {"opt": "sgd", "blocks": 2, "lr": 0.01} and fast[3]["value"] == float("inf")
    assert fast[4]["error"] == "Diverged: loss is nan" and fast[5]["number"] == running.number
    assert _rdb_counts(db, sid) == state_counts(loaded, db) == {"RUNNING": 1, "COMPLETE": 3, "PRUNED": 1, "FAIL": 1}
    memory = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    memory.add_trials(loaded.get_trials())
    assert trial_rows(memory, memory._storage) == slow  # not an RDB: the public API path
