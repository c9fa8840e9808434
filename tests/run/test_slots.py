"""More CPU workers than cores: at most `cores` trials train at once, and a killed worker's
slot is freed by the kernel (the slots are flock'd files)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

import optuna
import pytest
import torch

from conftest import Work
from hpsearch.run.allocation import allocate, cpu_cores
from hpsearch.run.workers import CpuSlots


def _hold_forever(folder: str, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    with CpuSlots(folder, 1).hold(lambda: True):
        ready.set()
        signal.pause()


def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_forever, args=(str(tmp_path), ready))
    p.start()
    assert ready.wait(60)
    tries = iter(range(3))
    with CpuSlots(str(tmp_path), 1).hold(lambda: next(tries, None) is not None) as got:
        assert not got  # taken: we gave up waiting
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    with CpuSlots(str(tmp_path), 1).hold(lambda: True) as got:
        assert got


def test_slot_count(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    cpu = torch.device("cpu")
    assert allocate(cpu, 4, 10, study, cpu_slots=2).slots == 2  # 4 workers, 2 may train at once
    assert allocate(cpu, 2, 10, study, cpu_slots=2).slots == 0  # no more workers than slots: no limit needed
    assert allocate(cpu, 16, 100, study, cpu_slots=0).slots == 0  # 0 lifts the limit
    assert allocate(cpu, 8, 3, study, cpu_slots=2).workers == 3  # never more workers than trials left
    assert allocate(cpu, 8, 0, study).workers == 1  # one waits for the running trials
    assert allocate(cpu, "auto", 100, study).workers == cpu_cores()


@pytest.mark.slow
def test_four_workers_on_two_slots_never_train_more_than_two_trials_at_once(
        work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_CPU_SLOTS", "2")
    r = work.cli("run", "paired", "--workers", "4", "--n-trials", "8", "--pruner", "none")
    assert "2 train at once" in r.output
    trials = optuna.load_study(study_name="paired", storage=work.url).get_trials()
    assert len(trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    events = sorted([(t.datetime_start, 1) for t in trials] + [(t.datetime_complete, -1) for t in trials])
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2, peak  # trial 0 waited for a second running trial: 1 here means one slot, not two
