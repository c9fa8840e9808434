"""Fused training (hpsearch.fused) against separate runs, curve for curve, on real digits data.

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
from hpsearch.fused import FUSE_ENV, Separate, fit_together, fusion_wanted, train_together
from hpsearch.train import Diverged, FitResult, fit

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
    ca, cb = a.curves(), b.curves()
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
    group = train_together(cnn_members(), digits, epochs=EPOCHS, seeds=SEEDS, device=CPU, fuse=True)
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
                           fuse=True)
    first_epoch = [FitResult(r.model, r.history[:1]) for r in cnn_separate]
    assert differences(swapped[0], first_epoch[0], len(digits.val)) == []
    assert differences(swapped[1], first_epoch[1], len(digits.val)) != []
    assert differences(swapped[2], first_epoch[2], len(digits.val)) != []


def test_fused_mlp_with_batch_norm_equals_separate_runs(digits: SearchData) -> None:
    configs, seeds = mlp_members(), [5, 6, 7]
    fused = fit_together(configs, digits, epochs=EPOCHS, seeds=seeds, device=CPU, fuse=True)
    for i, (c, s) in enumerate(zip(configs, seeds)):
        assert differences(fused[i], fit(c, digits, epochs=EPOCHS, seed=s, device=CPU), len(digits.val)) == [], i


def test_a_stopped_member_leaves_the_others_curves_unchanged(digits: SearchData,
                                                             cnn_separate: list[FitResult]) -> None:
    group = train_together(cnn_members(), digits, epochs=EPOCHS, seeds=SEEDS, device=CPU, fuse=True)
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
    group = train_together(configs, digits, epochs=2, seeds=[1, 2, 3], device=CPU, fuse=True)
    assert group.fused
    first = group.epoch()
    assert isinstance(first[1], Diverged) and group.active == [0, 2]
    group.epoch()
    for i in (0, 2):
        assert differences(group.result(i), fit(configs[i], digits, epochs=2, seed=i + 1, device=CPU),
                           len(digits.val)) == [], i
    with pytest.raises(Diverged):  # fit_together reports it as fit would, after the others finished
        fit_together(configs, digits, epochs=1, seeds=[1, 2, 3], device=CPU, fuse=True)


def test_dropout_members_draw_their_own_masks(digits: SearchData) -> None:
    """Two members with the same seed and config: identical without dropout, apart with it."""
    def curves(dropout: float) -> list[list[float | None]]:
        cfg = TrialConfig(CNN(blocks=1, filters=8, dense=16, dropout=dropout), OptimConfig(lr=3e-3), 64)
        runs = fit_together([cfg, cfg], digits, epochs=1, seeds=[4, 4], device=CPU, fuse=True)
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
    group = train_together(configs, digits, epochs=2, seeds=[1, 2], device=CPU, fuse=True)
    assert isinstance(group, Separate) and not group.fused
    assert group.reason is not None and reason in group.reason
    for _ in range(2):
        group.epoch()
    for i, (c, s) in enumerate(zip(configs, [1, 2])):
        assert group.result(i).curves()["train_loss"] == fit(c, digits, epochs=2, seed=s,
                                                             device=CPU).curves()["train_loss"]


def test_fusion_follows_the_device_and_the_switch(monkeypatch: pytest.MonkeyPatch, digits: SearchData) -> None:
    monkeypatch.delenv(FUSE_ENV, raising=False)
    assert fusion_wanted(torch.device("cuda")) and not fusion_wanted(CPU)
    monkeypatch.setenv(FUSE_ENV, "0")
    assert not fusion_wanted(torch.device("cuda"))
    monkeypatch.setenv(FUSE_ENV, "1")
    assert fusion_wanted(CPU)
    cfg = TrialConfig(CNN(blocks=1, filters=8, dense=0))
    assert train_together([cfg, cfg], digits, epochs=1, seeds=[1, 2], device=CPU).fused
    monkeypatch.setenv(FUSE_ENV, "0")
    assert not train_together([cfg, cfg], digits, epochs=1, seeds=[1, 2], device=CPU).fused


def test_retrain_seeds_train_fused_and_report_every_epoch_of_every_seed(digits: SearchData,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``best --retrain --seeds K``'s trainer: fused, the ticks come epoch by epoch (seeds in order),
    ``done`` once per seed in order, and the runs equal the unfused ones."""
    from hpsearch.retrain import _fit_seeds
    from hpsearch.tasks import classify

    cfg = cnn_members()[0]
    ticks: list[tuple[int, int, int]] = []
    done: list[int] = []

    def seeds_fit() -> list[FitResult]:
        ticks.clear()
        done.clear()
        return _fit_seeds(cfg, digits, SEEDS, 2, CPU, classify(), lambda i, k, m: ticks.append((i, k, m.epoch)),
                          lambda seed, _m: done.append(seed))

    monkeypatch.setenv(FUSE_ENV, "1")
    fused = seeds_fit()
    assert all(f.fused for f in fused) and done == SEEDS
    assert ticks == [(1, 3, 1), (2, 3, 1), (3, 3, 1), (1, 3, 2), (2, 3, 2), (3, 3, 2)]
    monkeypatch.setenv(FUSE_ENV, "0")
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
