"""Memory-aware packing of trials: out of GPU memory is not a crash (hpsearch.run.oom), and
``--workers auto``. Real workers, a real SQLite study, and a fixture model that raises CUDA's OOM
class (``tests/studies/oom.py``), so it runs on a CPU."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState

from conftest import Work
from hpsearch.run.allocation import MAX_PER_GPU, auto_workers, cpu_cores, workers_for_memory
from hpsearch.store.records import OOM_REQUEUED_FROM, OOM_REQUEUES

pytestmark = pytest.mark.slow


def test_cuda_oom_is_the_class_the_workers_catch() -> None:
    assert torch.cuda.OutOfMemoryError is torch.OutOfMemoryError


def test_out_of_memory_beside_another_trial_is_requeued_and_runs_again(work: Work) -> None:
    work.cli("run", "oom", "--workers", "2", "--pruner", "none")
    trials = optuna.load_study(study_name="oom", storage=work.url).get_trials()
    first = trials[0]
    assert first.state == TrialState.FAIL
    assert "out of GPU memory on cpu with 1 other trial(s) there (1)" in first.user_attrs["error"]
    assert "re-queued" in first.user_attrs["error"]
    again = [t for t in trials if t.user_attrs.get(OOM_REQUEUED_FROM) == 0]
    assert len(again) == 1 and again[0].params == first.params and again[0].user_attrs[OOM_REQUEUES] == 1
    assert again[0].state == TrialState.COMPLETE
    assert sorted(t.number for t in trials if t.state == TrialState.COMPLETE) == [1, again[0].number]


def test_out_of_memory_alone_fails_with_the_reason_and_stops_a_space_that_never_fits(work: Work) -> None:
    r = work.cli("run", "oom", "--name", "oom_alone", "--pruner", "none", expect=None)
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "3 trials in a row failed" in r.output and "does not fit on cpu even alone" in r.output
    trials = optuna.load_study(study_name="oom_alone", storage=work.url).get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.FAIL for t in trials)
    assert all("does not fit on cpu even alone" in t.user_attrs["error"] for t in trials)
    assert not any(t.user_attrs.get(OOM_REQUEUED_FROM) is not None for t in trials)  # nothing re-queued


def test_a_pack_out_of_memory_is_requeued_whole_and_its_worker_takes_fewer_at_once(
        work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker, two trials at once, both out of memory: each is re-queued (its pack-mate is its
    co-tenant, even once told), and the worker halves its pack, so the copies train one at a time
    (two same-shaped trials taken together would have fused: ``fused_with``)."""
    monkeypatch.setenv("HPSEARCH_FUSE", "1")
    work.cli("run", "oom", "--name", "oom_pack", "--trials-per-worker", "2", "--pruner", "none")
    trials = optuna.load_study(study_name="oom_pack", storage=work.url).get_trials()
    pack = [t for t in trials if t.number < 2]
    assert all(t.state == TrialState.FAIL and "its parameters are re-queued" in t.user_attrs["error"] for t in pack)
    again = {t.user_attrs[OOM_REQUEUED_FROM]: t for t in trials if t.user_attrs.get(OOM_REQUEUED_FROM) is not None}
    assert sorted(again) == [0, 1] and all(t.state == TrialState.COMPLETE for t in again.values())
    assert all(again[n].params == pack[n].params for n in (0, 1))
    assert not [t for t in again.values() if "fused_with" in t.user_attrs]  # one at a time after the halving


def test_workers_auto_is_the_core_count_on_a_cpu_and_packs_cards_by_measured_peak(work: Work) -> None:
    study = optuna.create_study(storage=work.url, study_name="empty")
    assert auto_workers(torch.device("cpu"), study) == cpu_cores()
    gib = 1 << 30
    assert workers_for_memory(80 * gib, [], 1) == 1  # nothing measured yet: one per card
    assert workers_for_memory(80 * gib, [10 * gib, 15 * gib], 2) == 2 * 4  # 64 GiB usable // 15 GiB peak, 2 cards
    assert workers_for_memory(80 * gib, [100 * gib], 1) == 1  # never below one
    assert workers_for_memory(80 * gib, [1 << 20], 1) == MAX_PER_GPU


def test_workers_auto_runs_and_a_bad_workers_value_is_one_line(work: Work) -> None:
    r = work.cli("run", "tiny", "--workers", "auto", "--n-trials", "2", "--pruner", "none")
    assert f"{min(2, cpu_cores())} worker(s)" in r.output
    bad = work.cli("run", "tiny", "--workers", "many", expect=2).output
    assert "--workers must be >= 1 or auto, got 'many'" in bad and len(bad.strip().splitlines()) == 1
