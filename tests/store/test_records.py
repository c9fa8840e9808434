"""Every attribute hpsearch stores is declared in hpsearch.store.records, and sits where it is meant to."""

from __future__ import annotations

import optuna
import pytest

from conftest import Finished, Work
from hpsearch.store import records
from hpsearch.store.compat import storage_of, study_id

pytestmark = pytest.mark.slow

TRIAL_SYSTEM = {records.CONFIG, records.CURVES, records.REPEAT_CURVES, records.ELAPSED}


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
    rec = records.retrain_record(study)
    assert rec is not None and study.user_attrs[records.RETRAIN_LINE].startswith(f"trial {rec['trial']}: test top1 ")
    assert study.user_attrs[records.LOOKS] == rec["test_looks"] == 1
