"""A database and a checkpoint written by the previous version open in every command.

The fixtures (tests/fixtures/daa92c9, see its README) were made by the main of 2026-12-06 before
the tree was grouped by concern and the record module took over every stored key. Their trials
have no ``best_epoch`` and no training top-k curve; the study has a retrain (look 1) and a
``compare --test`` (look 2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
import torch

from conftest import Work
from hpsearch import load_checkpoint
from hpsearch.data import DataSpec, load_test_data
from hpsearch.store import records
from hpsearch.tasks._classify import evaluate

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parents[1] / "fixtures" / "daa92c9"


@pytest.fixture
def today(work: Work) -> Work:
    shutil.copy(FIXTURES / "today.db", work.db)
    shutil.copy(FIXTURES / "today.py", work.path / "studies" / "today.py")
    return work


def test_the_previous_versions_study_opens_in_every_command(today: Work) -> None:
    work = today
    assert "today" in work.cli("studies").output
    listed = json.loads(work.cli("trials", "today", "--format", "json").output)
    assert [r["number"] for r in listed] == [0, 1, 2, 3] and {r["model"] for r in listed} == {"cnn"}
    work.cli("trials", "today")
    shown = work.cli("best", "today").output
    assert "best trial 3" in shown and "test split looked at 2 times" in shown
    assert json.loads(work.cli("best", "today", "--json").output)["retrain"]["trial"] == 3
    again = work.cli("best", "today", "--retrain").output  # the record, no new look
    assert "test split looked at 2 times" in again
    assert "filters" in work.cli("compare", "today", "--by", "filters").output
    work.cli("report", "today")
    assert (work.path / "today-report.html").stat().st_size > 100_000

    study = optuna.load_study(study_name="today", storage=work.url)
    for t in study.trials:  # upgraded on read: the best epoch from the curve the old version kept
        rec = records.trial_record(t, "val_top1", maximize=True)
        assert "best_epoch" not in t.user_attrs
        assert rec.best_epoch == records.best_epoch(rec.curves["val_top1"], True) is not None

    work.cli("run", "today", "--n-trials", "5", "--pruner", "none")  # the old study tops up
    study = optuna.load_study(study_name="today", storage=work.url)
    new = study.trials[4]
    assert new.state == optuna.trial.TrialState.COMPLETE and "best_epoch" in new.user_attrs
    assert "train_topk" in records.curves_of_trial(new)
    r = work.cli("best", "today", "--retrain", "--force", "--seeds", "1")
    assert "test split looked at 3 times" in r.output
    assert records.retrain_record(optuna.load_study(study_name="today", storage=work.url))["test_looks"] == 3


def test_the_previous_versions_checkpoint_reloads_and_scores_what_it_recorded(work: Work) -> None:
    model, ckpt = load_checkpoint(FIXTURES / "today-checkpoint.pt")
    spec = DataSpec(**{k: ckpt["settings"][k] for k in ("dataset", "val_fraction", "split_seed", "train_subset")})
    mean, std = (torch.tensor(ckpt["normalization"][k]) for k in ("mean", "std"))
    _, top1, _, _ = evaluate(model, load_test_data(spec, work.path, mean, std, look=lambda: None), 3)
    assert top1 == pytest.approx(ckpt["metrics"]["test_top1"])
