"""Fused training (hpsearch.train.fused) against separate runs, curve for curve, on real digits data.

The tolerance: fused members run grouped convolutions and batched matmuls, which add the same
products in another order than a single model's kernels (forward outputs differ by ~5e-7).
Adam's division by the root of tiny second moments, and SGD with momentum, amplify that over
the steps of an epoch: measured on these configs at 1 thread, losses differ by up to 2.2e-3
(relative, or absolute below 1) and validation top-1 by up to two images. Losses must agree
within 5e-3 and accuracies within three images; a swapped seed moves the first epoch's losses
by 2–6e-2 and fails (checked below, so the comparison can fail).
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from conftest import Work
from hpsearch import CNN, MLP, ModelSpec, OptimConfig, TrialConfig, register_model
from hpsearch.data import DataSpec, SearchData, load_search_data
from hpsearch.run import interrupts
from hpsearch.run.objective import Objective
from hpsearch.run.workers import run_trials
from hpsearch.store.storage import open_storage
from hpsearch.study import discover
from hpsearch.study.declaration import StoredSettings
from hpsearch.train.fused import Separate, fit_together, train_together
from hpsearch.train.loop import Diverged, EpochMetrics, FitResult, curves_of, fit
from hpsearch.train.options import FUSE_ENV, Speedups

FUSE = Speedups(fuse=True)  # what HPSEARCH_FUSE=1 resolves to at the edge

CPU = torch.device("cpu")
EPOCHS = 3
LOSS_TOL = 5e-3
VAL_IMAGES = 3  # a validation image near a class boundary may flip
SEEDS = [11, 12, 13]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One thread: the curves are compared, not timed, and two threads on a shared 2-core machine
    spend most of each tiny digits op waiting for each other (measured: 10× slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> SearchData:
    return load_search_data(DataSpec("digits"), Path("."))


def cnn_members() -> list[TrialConfig]:
    """One CNN with BatchNorm, three runs that differ in everything a member owns."""
    model = CNN(blocks=2, filters=8, dense=16)
    return [TrialConfig(model, OptimConfig(name="adam", lr=3e-3), 64),
            TrialConfig(model, OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-2), 64),
            TrialConfig(model, OptimConfig(name="sgd", lr=0.05, momentum=0.9, scheduler="cosine"), 64, "pad_crop")]


def mlp_members() -> list[TrialConfig]:
    model = MLP(hidden=(32,), norm="batch")
    return [TrialConfig(model, OptimConfig(name="adam", lr=lr, weight_decay=wd), 32)
            for lr, wd in [(3e-3, 0.0), (1e-3, 1e-3), (1e-2, 0.0)]]


@pytest.fixture(scope="module")
def cnn_separate(digits: SearchData) -> list[FitResult]:
    return [fit(c, digits, epochs=EPOCHS, seed=s, device=CPU) for c, s in zip(cnn_members(), SEEDS)]


def differences(a: FitResult, b: FitResult, n_val: int) -> list[str]:
    """Every curve point where two runs differ beyond the tolerance (empty: the same run)."""
    return curve_differences(a.curves(), b.curves(), n_val)


def curve_differences(ca: dict[str, list[float | None]], cb: dict[str, list[float | None]], n_val: int) -> list[str]:
    bad = []
    for key in ca:
        if key in ("seconds", "train_seconds"):
            continue
        for epoch, (x, y) in enumerate(zip(ca[key], cb[key]), 1):
            if x is None or y is None:
                if x is not y:
                    bad.append(f"{key}@{epoch}: {x} vs {y}")
                continue
            if "loss" in key:
                ok = math.isclose(x, y, rel_tol=LOSS_TOL, abs_tol=LOSS_TOL)
            else:
                ok = abs(x - y) <= VAL_IMAGES / n_val + 1e-9 if key.startswith("val_") else abs(x - y) <= LOSS_TOL
            if not ok:
                bad.append(f"{key}@{epoch}: {x} vs {y}")
    if len(ca["train_loss"]) != len(cb["train_loss"]):
        bad.append(f"{len(ca['train_loss'])} vs {len(cb['train_loss'])} epochs")
    return bad


def test_fused_cnn_runs_equal_separate_runs_curve_for_curve(digits: SearchData,
                                                            cnn_separate: list[FitResult]) -> None:
    group = train_together(cnn_members(), digits, epochs=EPOCHS, seeds=SEEDS, device=CPU, speedups=FUSE)
    assert group.fused, group.reason
    for _ in range(EPOCHS):
        group.epoch()
    for i, sep in enumerate(cnn_separate):
        assert differences(group.result(i), sep, len(digits.val)) == [], f"member {i}"
    # BatchNorm's running statistics came back into each member's own module (validation used them)
    for i, sep in enumerate(cnn_separate):
        fused_bn = dict(group.result(i).model.named_buffers())
        for name, buf in sep.model.named_buffers():
            # statistics of activations that differ by the float noise above; never copied back, they
            # would still be BatchNorm's initial zeros and ones
            assert torch.allclose(fused_bn[name].float(), buf.float(), rtol=5e-2, atol=3e-2), (i, name)


def test_a_swapped_seed_is_caught(digits: SearchData, cnn_separate: list[FitResult]) -> None:
    """The comparison above can fail: members 1 and 2 trained with each other's seeds differ."""
    swapped = fit_together(cnn_members(), digits, epochs=1, seeds=[SEEDS[0], SEEDS[2], SEEDS[1]], device=CPU,
                           speedups=FUSE)
    first_epoch = [FitResult(r.model, r.history[:1]) for r in cnn_separate]
    assert differences(swapped[0], first_epoch[0], len(digits.val)) == []
    assert differences(swapped[1], first_epoch[1], len(digits.val)) != []
    assert differences(swapped[2], first_epoch[2], len(digits.val)) != []


def test_fused_mlp_with_batch_norm_equals_separate_runs(digits: SearchData) -> None:
    configs, seeds = mlp_members(), [5, 6, 7]
    fused = fit_together(configs, digits, epochs=EPOCHS, seeds=seeds, device=CPU, speedups=FUSE)
    for i, (c, s) in enumerate(zip(configs, seeds)):
        assert differences(fused[i], fit(c, digits, epochs=EPOCHS, seed=s, device=CPU), len(digits.val)) == [], i


def test_a_stopped_member_leaves_the_others_curves_unchanged(digits: SearchData,
                                                             cnn_separate: list[FitResult]) -> None:
    group = train_together(cnn_members(), digits, epochs=EPOCHS, seeds=SEEDS, device=CPU, speedups=FUSE)
    assert group.fused
    assert sorted(group.epoch()) == [0, 1, 2]
    group.stop(1)  # pruned after its first epoch
    assert sorted(group.epoch()) == [0, 2]
    assert sorted(group.epoch()) == [0, 2]
    assert len(group.result(1).history) == 1
    assert differences(group.result(1), FitResult(cnn_separate[1].model, cnn_separate[1].history[:1]),
                       len(digits.val)) == []
    for i in (0, 2):
        assert differences(group.result(i), cnn_separate[i], len(digits.val)) == [], i


def test_a_diverging_member_is_dropped_and_the_others_go_on(digits: SearchData) -> None:
    model = CNN(blocks=1, filters=8, dense=0, batch_norm=False)
    configs = [TrialConfig(model, OptimConfig(name="adam", lr=3e-3), 64),
               TrialConfig(model, OptimConfig(name="sgd", lr=1e6), 64),
               TrialConfig(model, OptimConfig(name="adam", lr=1e-3), 64)]
    group = train_together(configs, digits, epochs=2, seeds=[1, 2, 3], device=CPU, speedups=FUSE)
    assert group.fused
    first = group.epoch()
    assert isinstance(first[1], Diverged) and group.active == [0, 2]
    group.epoch()
    for i in (0, 2):
        assert differences(group.result(i), fit(configs[i], digits, epochs=2, seed=i + 1, device=CPU),
                           len(digits.val)) == [], i
    with pytest.raises(Diverged):  # fit_together reports it as fit would, after the others finished
        fit_together(configs, digits, epochs=1, seeds=[1, 2, 3], device=CPU, speedups=FUSE)


def test_dropout_members_draw_their_own_masks(digits: SearchData) -> None:
    """Two members with the same seed and config: identical without dropout, apart with it."""
    def curves(dropout: float) -> list[list[float | None]]:
        cfg = TrialConfig(CNN(blocks=1, filters=8, dense=16, dropout=dropout), OptimConfig(lr=3e-3), 64)
        runs = fit_together([cfg, cfg], digits, epochs=1, seeds=[4, 4], device=CPU, speedups=FUSE)
        return [r.curves()["train_loss"] for r in runs]

    same = curves(0.0)
    assert same[0] == same[1]
    apart = curves(0.5)
    assert apart[0] != apart[1]
    assert curves(0.5) == apart  # and the group's dropout stream reproduces


@register_model("fused_test_unfreezing")
@dataclass(frozen=True)
class Unfreezing(ModelSpec):
    """A spec with per-epoch behaviour: never fused."""

    def build(self, info):  # noqa: ANN001, ANN201
        c, h, w = info.shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, info.num_classes))

    def on_epoch(self, model: nn.Module, epoch: int) -> None:
        model[1].weight.requires_grad_(epoch > 1)


class _Threshold(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if float(x.mean()) > -1e9 else -x  # data-dependent Python control flow: vmap cannot batch it


@register_model("fused_test_unbatchable")
@dataclass(frozen=True)
class Unbatchable(ModelSpec):
    def build(self, info):  # noqa: ANN001, ANN201
        c, h, w = info.shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, info.num_classes), _Threshold())


@pytest.mark.parametrize("configs, reason", [
    ([TrialConfig(CNN(blocks=1, filters=8, dense=0)), TrialConfig(CNN(blocks=1, filters=16, dense=0))],
     "models differ"),
    ([TrialConfig(CNN(blocks=1, filters=8, dense=0), batch_size=32),
      TrialConfig(CNN(blocks=1, filters=8, dense=0), batch_size=64)], "batch sizes differ"),
    ([TrialConfig(Unfreezing())] * 2, "on_epoch"),
    ([TrialConfig(Unbatchable())] * 2, "vmap cannot batch"),
])
def test_unfusable_members_train_separately_and_correctly(digits: SearchData, configs: list[TrialConfig],
                                                          reason: str) -> None:
    group = train_together(configs, digits, epochs=2, seeds=[1, 2], device=CPU, speedups=FUSE)
    assert isinstance(group, Separate) and not group.fused
    assert group.reason is not None and reason in group.reason
    for _ in range(2):
        group.epoch()
    for i, (c, s) in enumerate(zip(configs, [1, 2])):
        assert group.result(i).curves()["train_loss"] == fit(c, digits, epochs=2, seed=s,
                                                             device=CPU).curves()["train_loss"]


def test_fusion_follows_the_device_and_the_switch(monkeypatch: pytest.MonkeyPatch, digits: SearchData) -> None:
    """The switch is read once, at the edge (Speedups.from_env); the trainer reads only what it is given."""
    monkeypatch.delenv(FUSE_ENV, raising=False)
    default = Speedups.from_env()
    assert default.fuses(torch.device("cuda")) and not default.fuses(CPU)
    monkeypatch.setenv(FUSE_ENV, "0")
    assert not Speedups.from_env().fuses(torch.device("cuda"))
    monkeypatch.setenv(FUSE_ENV, "1")
    on = Speedups.from_env()
    assert on.fuses(CPU)
    cfg = TrialConfig(CNN(blocks=1, filters=8, dense=0))
    assert train_together([cfg, cfg], digits, epochs=1, seeds=[1, 2], device=CPU, speedups=on).fused
    assert not train_together([cfg, cfg], digits, epochs=1, seeds=[1, 2], device=CPU).fused  # no env read below


def test_retrain_seeds_train_fused_and_report_every_epoch_of_every_seed(digits: SearchData,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``best --retrain --seeds K``'s trainer: fused, the ticks come epoch by epoch (seeds in order),
    ``done`` once per seed in order, and the runs equal the unfused ones."""
    from hpsearch.results.retrain import _fit_seeds
    from hpsearch.tasks import classify

    cfg = cnn_members()[0]
    ticks: list[tuple[int, int, int]] = []
    done: list[int] = []

    def seeds_fit() -> list[FitResult]:
        ticks.clear()
        done.clear()
        return _fit_seeds(cfg, digits, SEEDS, 2, CPU, speedups, classify(),
                          lambda i, k, m: ticks.append((i, k, m.epoch)), lambda seed, _m: done.append(seed))

    speedups = Speedups(fuse=True)
    fused = seeds_fit()
    assert all(f.fused for f in fused) and done == SEEDS
    assert ticks == [(1, 3, 1), (2, 3, 1), (3, 3, 1), (1, 3, 2), (2, 3, 2), (3, 3, 2)]
    speedups = Speedups(fuse=False)
    separate = seeds_fit()
    assert not any(f.fused for f in separate) and done == SEEDS
    assert ticks == [(1, 3, 1), (1, 3, 2), (2, 3, 1), (2, 3, 2), (3, 3, 1), (3, 3, 2)]
    for a, b in zip(fused, separate):
        assert differences(a, b, len(digits.val)) == []


def test_repeats_train_fused_and_compare_reproduces_them(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Study(repeats=2)`` with fusion on: each trial's two seeds train as one model, the trial
    says so, and ``compare --test`` retrains them the same way and reproduces every score."""
    monkeypatch.setenv(FUSE_ENV, "1")
    work.cli("run", "repeats", "--pruner", "none")
    done = optuna.load_study(study_name="repeats", storage=work.url).get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3 and all(t.user_attrs["fused"] == 2 for t in done)
    assert all(len(t.user_attrs["repeat_values"]) == 2 for t in done)
    out = json.loads(work.cli("compare", "repeats", "--by", "filters", "--json", "--test").stdout)
    assert out["reproduced"] == "3/3"


def test_a_bad_fuse_setting_is_one_line(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FUSE_ENV, "yes")
    out = work.cli("run", "tiny", expect=1).output
    assert "HPSEARCH_FUSE='yes'" in out and "Traceback" not in out and len(out.strip().splitlines()) == 1


# -- trials of one worker trained together (run --trials-per-worker) -------------------------------

STUDIES = Path(__file__).parents[1] / "studies"


class PruneAfterFirstEpoch(optuna.pruners.BasePruner):
    """Prunes the trials named, after their first epoch; no others."""

    def __init__(self, numbers: set[int]) -> None:
        self.numbers = numbers

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number in self.numbers and trial.last_step == 1


def test_a_pack_of_trials_fuses_and_each_trial_is_pruned_or_finished_on_its_own(
        digits: SearchData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three grid variants of one model (a worker's pack) train as one model; the pruner stops one
    after its first epoch while the others go on; each trial's curve equals its run alone."""
    monkeypatch.setenv(FUSE_ENV, "1")
    loaded = discover.load("grid6", STUDIES)
    settings = StoredSettings(data=DataSpec("digits"), max_epochs=EPOCHS, metric="val_top1", seed=0, module="grid6")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'pack.db'}", pruner=PruneAfterFirstEpoch({1}))
    for opt in ("adam", "sgd_hi", "sgd_lo"):
        study.enqueue_trial({"hidden": 8, "opt": opt})
    ticks: list[tuple[int, int]] = []
    objective = Objective(loaded.study, settings, digits, CPU, on_epoch=lambda n, m: ticks.append((n, m.epoch)),
                          speedups=FUSE)
    plans = [objective.plan(study.ask()) for _ in range(3)]
    settled: list[tuple[int, object, int]] = []
    objective.train(plans, lambda p, outcome: settled.append((p.number, outcome, len(p.history))))

    assert [(n, type(o).__name__ if isinstance(o, BaseException) else "value", e) for n, o, e in settled] == [
        (1, "TrialPruned", 1), (0, "value", EPOCHS), (2, "value", EPOCHS)]
    assert ticks == [(0, 1), (1, 1), (2, 1), (0, 2), (2, 2), (0, 3), (2, 3)]  # trial 1 trained no further
    for p in plans:
        assert p.trial.user_attrs["fused_with"] == [q.number for q in plans if q is not p]
        alone = fit(p.config, digits, epochs=EPOCHS, seed=p.seeds[0], device=CPU).curves()
        alone = {k: v[:len(p.history)] for k, v in alone.items()}  # the pruned one: its first epoch
        assert curve_differences(curves_of(p.history), alone, len(digits.val)) == [], p.number
    values = {n: o for n, o, _ in settled if not isinstance(o, BaseException)}
    assert values == {p.number: p.history[-1].val_top1 for p in plans if p.number in values}


def test_a_pack_that_cannot_fuse_trains_in_turn_each_trial_its_own(
        digits: SearchData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two widths in one pack: two groups (no ``fused_with``), each trial exactly its run alone, and
    an error in one trial's epoch fails that trial only."""
    monkeypatch.setenv(FUSE_ENV, "1")
    loaded = discover.load("grid6", STUDIES)
    settings = StoredSettings(data=DataSpec("digits"), max_epochs=2, metric="val_top1", seed=0, module="grid6")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'pack.db'}")
    for hidden in (8, 16):
        study.enqueue_trial({"hidden": hidden, "opt": "adam"})
    objective = Objective(loaded.study, settings, digits, CPU, speedups=FUSE)
    plans = [objective.plan(study.ask()) for _ in range(2)]
    broken = plans[1]

    settled: list[tuple[int, object]] = []

    def crash_second_epoch(*_: object) -> None:
        if len(broken.history) == 2:  # on_epoch runs after the epoch is recorded
            raise RuntimeError("boom")
    objective.on_epoch = lambda n, m: crash_second_epoch() if n == broken.number else None
    objective.train(plans, lambda p, outcome: settled.append((p.number, outcome)))

    assert [n for n, _ in settled] == [1, 0]
    assert isinstance(settled[0][1], RuntimeError) and not isinstance(settled[1][1], BaseException)
    assert all("fused_with" not in p.trial.user_attrs for p in plans)
    ok = plans[0]
    alone = fit(ok.config, digits, epochs=2, seed=ok.seeds[0], device=CPU)
    assert curves_of(ok.history)["train_loss"] == alone.curves()["train_loss"]  # not fused: the same arithmetic


@pytest.mark.slow
def pack_of_two(tmp_path: Path, digits: SearchData) -> tuple[optuna.Study, Objective]:
    """A real SQLite study holding two same-shaped grid6 cells, asked, and an objective over them."""
    url = f"sqlite:///{tmp_path / 'pack.db'}"
    study = optuna.create_study(storage=open_storage(url, create=True), study_name="pack")
    for opt in ("adam", "sgd_hi"):
        study.enqueue_trial({"hidden": 8, "opt": opt})
    settings = StoredSettings(data=DataSpec("digits"), max_epochs=2, metric="val_top1", seed=0, module="grid6")
    return study, Objective(discover.load("grid6", STUDIES).study, settings, digits, CPU, speedups=FUSE)


def test_an_interrupt_fails_every_trial_of_the_pack_and_keeps_their_curves(
        digits: SearchData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FUSE_ENV, "1")
    study, objective = pack_of_two(tmp_path, digits)

    def ctrl_c(number: int, _: object) -> None:
        if number == 1:  # after trial 0's first epoch was reported and recorded
            raise interrupts.Interrupted(signal.SIGINT)
    objective.on_epoch = ctrl_c
    trials = [study.ask(), study.ask()]
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, study._storage, trials, objective)
    done = study.get_trials()
    assert [(t.state, t.user_attrs["error"]) for t in done] == [(TrialState.FAIL, "interrupted (Ctrl-C)")] * 2
    assert all(t.user_attrs["fused_with"] and t.user_attrs["epochs"] == 1 for t in done)  # curves kept


def test_a_trial_failed_as_stale_meanwhile_is_abandoned_and_its_pack_mate_finishes(
        digits: SearchData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker failed trial 0 as stale (its heartbeats were lost): its next report is refused.
    The worker gives that trial up, as it always did alone, and trains its pack-mate to the end."""
    monkeypatch.setenv(FUSE_ENV, "1")
    study, objective = pack_of_two(tmp_path, digits)
    trials = [study.ask(), study.ask()]

    def go_stale(number: int, m: EpochMetrics) -> None:
        if number == 0 and m.epoch == 1:  # as fail_stale_trials does, from another process
            study._storage.set_trial_state_values(trials[0]._trial_id, TrialState.FAIL)
    objective.on_epoch = go_stale
    ended = dict(run_trials(study, study._storage, trials, objective))
    assert ended[0][0] == TrialState.FAIL and str(ended[0][2]).startswith("abandoned")
    assert ended[1][0] == TrialState.COMPLETE
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]


def test_run_trials_per_worker_fuses_a_grids_variants_and_scores_as_alone(work: Work,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``run --trials-per-worker 3`` on the 2 × 3 grid: the worker's pack is one width's three
    optimizers, trained as one model; each cell scores what it scores trained alone."""
    monkeypatch.setenv(FUSE_ENV, "1")
    out = work.cli("run", "grid6", "--name", "packed", "--trials-per-worker", "3", "--n-trials", "3").output
    assert "up to 3 trials each at once" in out
    work.cli("run", "grid6", "--name", "alone", "--n-trials", "3")
    packed = optuna.load_study(study_name="packed", storage=work.url).get_trials()
    alone = {tuple(sorted(t.params.items())): t for t in
             optuna.load_study(study_name="alone", storage=work.url).get_trials()}
    assert len(packed) == 3 and all(t.state == TrialState.COMPLETE for t in packed)
    n_val = len(load_search_data(DataSpec("digits"), Path(".")).val)
    for t in packed:
        mates = {u.number for u in packed if u.params["hidden"] == t.params["hidden"] and u.number != t.number}
        assert set(t.user_attrs["fused_with"]) == mates, t.number
        twin = alone[tuple(sorted(t.params.items()))]
        assert "fused_with" not in twin.user_attrs
        # seeds derive from the trial number: the same cell got the same number in both runs
        assert t.user_attrs["seed"] == twin.user_attrs["seed"]
        assert abs(t.value - twin.value) <= VAL_IMAGES / n_val + 1e-9


def test_a_bad_trials_per_worker_is_one_line(work: Work) -> None:
    out = work.cli("run", "tiny", "--trials-per-worker", "0", expect=2).output
    assert "--trials-per-worker must be >= 1, got 0" in out and len(out.strip().splitlines()) == 1
    assert "tiny" not in optuna.get_all_study_names(work.url)
