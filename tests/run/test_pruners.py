"""Pruners on real studies. The median-time pruner compares trials at equal seconds, so it
prunes what the epoch-aligned median pruner keeps and keeps what that one prunes; the median
pruners' completed-trial cache reads what Optuna reads, with one statement when nothing is new."""

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import event

from conftest import Work
from hpsearch import cli
from hpsearch.run import pruners
from hpsearch.run.pruners import CompletedTrials, MedianTimePruner, make_pruner, value_at
from hpsearch.store.records import ELAPSED

CURVE = (0.80, 0.85, 0.90)


def study_with(tmp_path: Path, pruner: optuna.pruners.BasePruner, name: str = "s") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'p.db'}",
                               direction="maximize", pruner=pruner)


class Clock:
    """Seconds since the current trial started, set by the test: the pruner sees exactly the
    timings a test describes, however busy the machine is."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, trial: object) -> float:
        return self.seconds


def finish(study: optuna.Study, curve: tuple[float, ...], step_seconds: float, clock: Clock | None = None) -> None:
    """A completed trial that reports ``curve``, one step every ``step_seconds``."""
    trial = study.ask()
    for step, value in enumerate(curve, start=1):
        if clock is not None:
            clock.seconds = step * step_seconds
        trial.report(value, step)
        assert not trial.should_prune()  # fewer than 5 completed trials: never prunes yet
    study.tell(trial, curve[-1])


def test_a_slow_trial_is_judged_by_what_fast_ones_reached_in_the_same_seconds(tmp_path: Path) -> None:
    clock = Clock()
    timed = study_with(tmp_path, MedianTimePruner(n_startup_trials=5, n_warmup_steps=1, elapsed=clock))
    for _ in range(5):
        finish(timed, CURVE, step_seconds=0.01, clock=clock)
    slow = timed.ask()
    clock.seconds = 0.3  # its first epoch takes longer than the fast trials' whole run
    slow.report(0.86, 1)  # above the fast trials' epoch-1 value, below their final one
    assert slow.should_prune()

    by_epoch = study_with(tmp_path, make_pruner("median", max_epochs=4), name="e")
    for _ in range(5):
        finish(by_epoch, CURVE, step_seconds=0.0)
    same = by_epoch.ask()
    same.report(0.86, 1)
    assert not same.should_prune()  # the epoch-aligned median keeps it


def test_a_fast_trial_is_not_held_back_by_slower_ones(tmp_path: Path) -> None:
    clock = Clock()
    timed = study_with(tmp_path, MedianTimePruner(n_startup_trials=5, n_warmup_steps=1, elapsed=clock))
    for _ in range(5):
        finish(timed, CURVE, step_seconds=0.3, clock=clock)
    fast = timed.ask()
    clock.seconds = 0.05
    fast.report(0.70, 1)  # no completed trial had reported anything yet
    assert not fast.should_prune()
    clock.seconds = 0.4  # now the slow trials had reached their first value, 0.80
    fast.report(0.75, 2)
    assert fast.should_prune()
    clock = timed.trials[-1].system_attrs[ELAPSED]
    assert [s for s, _ in clock] == [1, 2] and clock[0][1] < 0.3 <= clock[1][1]


def test_value_at_reads_the_curve_on_the_clock(tmp_path: Path) -> None:
    clock = Clock()
    timed = study_with(tmp_path, MedianTimePruner(elapsed=clock))
    finish(timed, CURVE, step_seconds=0.1, clock=clock)
    done = timed.trials[0]
    assert value_at(done, 0.05) is None
    assert value_at(done, 0.15) == CURVE[0]
    assert value_at(done, 60.0) == CURVE[-1]


def test_every_pruner_name_builds_and_a_wrong_one_says_which_exist() -> None:
    for name in pruners.registered():
        assert isinstance(make_pruner(name, max_epochs=5), optuna.pruners.BasePruner)
    with pytest.raises(ValueError, match="median-time"):
        make_pruner("fastest", max_epochs=5)
    assert cli.PRUNERS == pruners.registered() == ["median", "median-time", "hyperband", "none"]  # the CLI's choices


def test_pruners_and_samplers_are_open_registries() -> None:
    """A study module adds its own the way it adds a model: registered by name, built from what is stored."""
    from hpsearch.study import samplers

    pruners.register_pruner("patient")(lambda max_epochs: optuna.pruners.PatientPruner(None, patience=2))
    try:
        assert isinstance(make_pruner("patient", max_epochs=5), optuna.pruners.PatientPruner)
    finally:
        pruners._FACTORIES.pop("patient")
    samplers.register_sampler("gp")(lambda options, seed, n: optuna.samplers.RandomSampler(seed=seed))
    try:
        spec = samplers.SamplerSpec("gp", {"x": 1})
        spec.check()
        assert samplers.SamplerSpec.from_dict(spec.to_dict()) == spec  # stored by kind and options
        assert isinstance(spec.build(seed=1, n_trials=4), optuna.samplers.RandomSampler)
    finally:
        samplers._BUILDERS.pop("gp")
    with pytest.raises(ValueError, match="unknown sampler 'gp'; choose from tpe, random, grid, qmc, cmaes, nsga2 "):
        samplers.SamplerSpec("gp").check()


def test_completed_trials_are_read_once_and_match_optunas_read(store: Work) -> None:
    study = optuna.create_study(study_name="c", storage=store.url, direction="maximize")
    cache = CompletedTrials()

    def as_optuna_reads() -> None:
        seen = [(t.number, t.value, t.intermediate_values) for t in cache.read(study)]
        fresh = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        assert seen == [(t.number, t.value, t.intermediate_values) for t in fresh]

    first, second = study.ask(), study.ask()
    as_optuna_reads()  # none complete yet
    second.report(0.5, 1)
    study.tell(second, 0.5)  # completes before the trial asked first
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.FAIL)
    study.ask().report(0.1, 1)  # stays running
    as_optuna_reads()
    first.report(0.7, 1)
    study.tell(first, 0.7)
    as_optuna_reads()

    statements: list[str] = []
    engine = study._storage._backend.engine  # type: ignore[attr-defined]
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert len(cache.read(study)) == 2
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) == 1, statements  # which ids are complete; no trial re-read


@pytest.mark.slow
def test_run_with_median_time_records_each_trials_clock(work: Work) -> None:
    work.cli("run", "tiny", "--workers", "2", "--n-trials", "8", "--pruner", "median-time")
    trials = optuna.load_study(study_name="tiny", storage=work.url).get_trials()
    assert len(trials) == 8 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    for t in trials:
        clock = t.system_attrs[ELAPSED]
        assert [s for s, _ in clock] == sorted(t.intermediate_values)
        assert all(a < b for (_, a), (_, b) in zip(clock, clock[1:]))
