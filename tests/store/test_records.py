"""Every attribute hpsearch stores is declared in hpsearch.store.records, and sits where it is meant to."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import optuna
import pytest

from conftest import Finished, Work
from hpsearch.store import records
from hpsearch.store.compat import storage_of, study_id

SRC = Path(__file__).resolve().parents[2] / "src" / "hpsearch"
# a stored attribute named by a string literal: set_user_attr("x"), user_attrs["x"], .get("x"), system attrs too
RAW_KEY = re.compile(r"""\b(set_(trial_|study_)?(user|system)_attr\((\s*[\w.()]+,)?|(user|system)_attrs(\.get\(|\[))\s*["']""")


def test_no_module_but_the_record_module_names_a_stored_attribute_by_string() -> None:
    """Writers and readers go through store/records.py (put_attrs, TrialRecord, study_get, …)."""
    found = [f"{path.relative_to(SRC)}:{n}: {line.strip()}" for path in sorted(SRC.rglob("*.py"))
             if path.name != "records.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if RAW_KEY.search(line)]
    assert not found, "\n".join(found)


def test_the_raw_key_pattern_finds_what_it_is_meant_to() -> None:
    for line in ('trial.set_user_attr("seed", 1)', "t.user_attrs['model']", 't.user_attrs.get("epochs")',
                 't.system_attrs.get("fixed_params", {})', 'storage.set_trial_user_attr(t._trial_id, "error", e)'):
        assert RAW_KEY.search(line), line
    assert not RAW_KEY.search("records.put_attrs(trial, seed=1)")
    assert not RAW_KEY.search('"get_study_user_attrs", "get_study_system_attrs"')


def test_the_trial_record_reads_every_attribute_the_writers_may_write() -> None:
    fields = {f.name for f in dataclasses.fields(records.TrialRecord)}
    assert set(records.TrialAttrs.__annotations__) <= fields
    assert records.TRIAL_ATTRS == set(records.TrialAttrs.__annotations__) | {records.CELL}


def test_older_trials_are_upgraded_on_read() -> None:
    """hpsearch 0.1 wrote no model name (it trained the CNN); no version before this one wrote
    best_epoch: both come from what the trial does hold."""
    old = optuna.trial.create_trial(value=0.9, user_attrs={"n_params": 1000, "seed": 7, "epochs": 3,
                                                           "curves": {"val_top1": [0.5, 0.9, 0.8]}})
    rec = records.trial_record(old, "val_top1", maximize=True)
    assert (rec.model, rec.seeds, rec.best_epoch, rec.curves["val_top1"]) == ("cnn", (7,), 2, [0.5, 0.9, 0.8])
    assert records.trial_record(old, "val_top1", maximize=False).best_epoch == 1
    assert records.TrialRecord.of_trial(optuna.trial.create_trial(value=1.0)).model is None  # never trained


@pytest.mark.parametrize("curve, maximize, best", [
    ([0.1, 0.3, 0.3, 0.2], True, 2),  # the earliest of equal values
    ([None, 0.4, 0.2], False, 3),
    ([None, None], True, None),
    ([], True, None),
])
def test_best_epoch(curve: list[float | None], maximize: bool, best: int | None) -> None:
    assert records.best_epoch(curve, maximize) == best


TRIAL_SYSTEM = {records.CONFIG, records.CURVES, records.REPEAT_CURVES, records.ELAPSED}


@pytest.mark.slow
def test_a_searched_and_retrained_study_stores_only_declared_attributes(work: Work, tiny_retrained: Finished) -> None:
    work.adopt(tiny_retrained)
    study = optuna.load_study(study_name="tiny", storage=work.url)
    for t in study.get_trials():
        assert set(t.user_attrs) <= records.TRIAL_ATTRS, set(t.user_attrs) - records.TRIAL_ATTRS
        ours = {k for k in t.system_attrs if k.startswith("hpsearch:")}
        assert ours <= TRIAL_SYSTEM and records.CONFIG in ours and records.CURVES in ours
        assert all(len(str(v)) < 200 for k, v in t.user_attrs.items() if k != "traceback")  # short, readable
    assert set(study.user_attrs) <= records.STUDY_ATTRS, study.user_attrs
    system = {k for k in storage_of(study).get_study_system_attrs(study_id(study)) if k.startswith("hpsearch:")}
    assert {records.SETTINGS, records.FINGERPRINT, records.RETRAIN} <= system
    digest = records.study_get(study, records.SETTINGS)["train_digest"]  # of the decoded training split
    assert isinstance(digest, str) and len(digest) == 64
    rec = records.retrain_record(study)
    assert rec is not None and study.user_attrs[records.RETRAIN_LINE].startswith(f"trial {rec['trial']}: test top1 ")
    assert study.user_attrs[records.LOOKS] == rec["test_looks"] == 1
    done = [records.trial_record(t, "val_top1") for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for r in done:  # every metric the task computes, on the training pass and on validation, and the best epoch
        assert {"train_loss", "train_top1", "train_topk", "val_loss", "val_top1", "val_topk"} <= set(r.curves)
        assert r.best_epoch == records.best_epoch(r.curves["val_top1"], maximize=True) is not None
        assert "best_epoch" in study.trials[r.number].user_attrs  # recorded, not only derived


LEGACY_DB = Path(__file__).resolve().parents[1] / "fixtures" / "dc7b503" / "legacy.db"


def test_a_retrain_record_of_hpsearch_0_1_is_upgraded_on_read(tmp_path: Path) -> None:
    """The readers index what every version's record holds after the upgrade, and find absent what
    cannot be known (0.1 kept no model spec or size)."""
    from conftest import copy_sqlite

    copy_sqlite(LEGACY_DB, tmp_path / "legacy.db")
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'legacy.db'}")
    stored = records.study_get(study, records.RETRAIN)
    assert not {"task", "refit", "interrupted_looks"} & set(stored)  # what the fixture is a fixture of
    rec = records.retrain_record(study)
    assert rec is not None
    assert (rec["task"]["kind"], rec["refit"], rec["interrupted_looks"], rec["rounds"]) == ("classify", False, [], 1)
    assert rec["seeds"] == stored["seeds"] and rec["test"] == stored["test"]
    assert "model" not in rec and "n_params" not in rec
    assert records.task_of(rec).kind == "classify"


def test_look_markers_and_comparison_records_round_trip(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'db.db'}")
    assert records.pending_look(study) is None and records.comparison_records(study) == []
    records.study_put(study, records.PENDING, {"look": 2, "trial": 4})  # a marker written before "what" was
    assert records.pending_look(study) == {"look": 2, "trial": 4, "what": "retrain"}
    records.count_look(study, {"look": 3, "what": "compare --test", "trials": [1, 2]})
    assert records.looks_counted(study) == 3 and records.pending_look(study) == {
        "look": 3, "what": "compare --test", "trials": [1, 2]}
    first: records.ComparisonRecord = {"look": 3, "by": ["lr"], "metric": "val_top1", "groups": [
        {"params": {"lr": 0.1}, "trials": [1, 2], "test_top1": {"mean": 0.5, "std": 0.1, "values": [0.4, 0.6]}}]}
    records.close_look(study, first)
    records.close_look(study, {**first, "look": 4})
    assert records.pending_look(study) is None
    assert [r["look"] for r in records.comparison_records(study)] == [3, 4]
    assert records.comparison_records(study)[0]["groups"][0]["params"] == {"lr": 0.1}
    assert records.retrain_record(study) is None  # a comparison is not a retrain
