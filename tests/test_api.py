"""The Python API (hpsearch.api): a notebook runs a search, compares, retrains and reads typed
results back, with the real services and worker processes underneath."""

from __future__ import annotations

import importlib.util

import pytest

import hpsearch
from conftest import Work
from hpsearch.errors import HpsearchError
from hpsearch.results.best import BestAnswer
from hpsearch.results.compare import Comparison
from hpsearch.store.records import TrialRecord


@pytest.mark.slow
def test_a_notebook_searches_compares_retrains_and_reads_typed_results(work: Work) -> None:
    api = hpsearch.api  # resolves on first use, as `import hpsearch` stays light
    ran = api.search("tiny", workers=2, n_trials=4, pruner="none", storage=work.url, quiet=True)
    assert ran.study_name == "tiny" and ran.states == {"COMPLETE": 4} and ran.best_number is not None
    records = api.trials("tiny", storage=work.url)
    assert [r.number for r in records] == [0, 1, 2, 3] and all(isinstance(r, TrialRecord) for r in records)
    assert all(len(r.curves["val_top1"]) == 3 and len(r.curves["train_loss"]) == 3 for r in records)
    table = api.compare("tiny", by=["filters"], metrics=["val_loss", "train_top1"], storage=work.url)
    assert isinstance(table, Comparison) and sum(len(g.trials) for g in table.groups) == 4
    assert set(table.to_dict()["groups"][0]["metrics"]) == {"val_loss", "train_top1"}
    answer = api.best("tiny", storage=work.url)
    assert isinstance(answer, BestAnswer) and answer.trial is not None and answer.trial.number == ran.best_number
    assert answer.record is None and not answer.looked
    row = table.groups[-1].params  # the worse row, chosen by its parameters as compare's footer does
    done = api.best("tiny", storage=work.url, retrain=True, seeds=1, where=row, device="cpu")
    assert done.looked and done.record is not None and done.record["test_looks"] == 1
    assert done.trial is not None and done.trial.params["filters"] == row["filters"]
    assert 0.0 <= done.record["test"]["top1"]["mean"] <= 1.0
    again = api.best("tiny", storage=work.url, retrain=True, seeds=1, where=row, device="cpu")
    assert not again.looked and again.looks == 1  # the record answers: no second look
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(HpsearchError, match="pip install pandas"):
            api.frame(table)
    else:
        assert list(api.frame(table)["filters"]) == [g.params["filters"] for g in table.groups]
        assert len(api.frame(records)) == 4


def test_api_errors_are_the_commands_one_line_errors(work: Work) -> None:
    with pytest.raises(HpsearchError, match="no study database at .*empty.db; run `hpsearch run STUDY` first"):
        hpsearch.api.best(storage=work.url.replace("hpsearch.db", "empty.db"))
    with pytest.raises(HpsearchError, match="unknown study 'nope'"):
        hpsearch.api.search("nope", storage=work.url, quiet=True)
