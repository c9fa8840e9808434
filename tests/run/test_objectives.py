"""What a trial's score is: the mean over repeats, several objectives (a Pareto front), and
the final runs refit on train + validation."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from conftest import Finished, Work
from hpsearch import ModelConfig, OptimConfig, Study, TrialConfig, samplers
from hpsearch.data import DataSpec, load_search_data
from hpsearch.store.records import SETTINGS, repeat_curves_of, study_get
from hpsearch.study.declaration import StoredSettings
from hpsearch.study.seeds import trial_seed
from hpsearch.train.loop import Training, fit

CPU = torch.device("cpu")


def space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig()


def test_interleaved_runs_train_exactly_as_separate_runs() -> None:
    """Repeats step their seeds an epoch each in turn; each run keeps its own random streams
    (init, shuffling, augmentation, dropout), so the curves equal two separate fits."""
    data = load_search_data(DataSpec("digits"), Path("."))
    cfg = TrialConfig(ModelConfig(blocks=1, filters=8, dense=16, dropout=0.3), OptimConfig(lr=3e-3), 64, "rotation")
    runs = [Training(cfg, data, epochs=2, seed=s, device=CPU) for s in (3, 4)]
    for _ in range(2):
        for run in runs:
            run.epoch()
    for seed, run in zip((3, 4), runs):
        alone = fit(cfg, data, epochs=2, seed=seed, device=CPU)
        assert [m.train_loss for m in run.history] == [m.train_loss for m in alone.history]
        assert [m.val_loss for m in run.history] == [m.val_loss for m in alone.history]
    assert runs[0].history[-1].train_loss != runs[1].history[-1].train_loss


def test_bad_objectives_and_repeats_say_what_is_wrong() -> None:
    for kwargs, why in [
        ({"metrics": ("params", "val_top1")}, "a validation metric first"),
        ({"metrics": ("val_top1",)}, "2 or more objectives"),
        ({"metrics": ("val_top1", "size")}, "distinct names from val_top1"),
        ({"metrics": ("val_top1", "params"), "metric": "val_loss"}, "disagree"),
        ({"repeats": 0}, "repeats must be between 1 and 20"),
        ({"repeats": 2, "sampler": samplers.grid({"seed": [0, 1]})}, "already repeats each cell"),
    ]:
        with pytest.raises(ValueError, match=why):
            Study(dataset="digits", space=space, **kwargs)
    mo = Study(dataset="digits", space=space, metrics=["val_top1", "params"])
    assert mo.metric == "val_top1" and mo.sampler_spec.kind == "nsga2"  # NSGA-II unless told otherwise
    stored = StoredSettings.of(mo, 0, "m")
    assert stored.directions == ["maximize", "minimize"] and stored.multi
    assert StoredSettings.from_dict(json.loads(json.dumps(stored.to_dict()))) == stored
    old = {k: v for k, v in stored.to_dict().items() if k not in ("metrics", "repeats", "sampler")}
    assert StoredSettings.from_dict(old).objectives == ("val_top1",)  # settings stored before 0.3


def test_repeats_score_a_config_by_its_seed_mean_and_prune_on_the_running_mean(work: Work) -> None:
    work.cli("run", "repeats", "--pruner", "none")
    study = optuna.load_study(study_name="repeats", storage=work.url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3
    for t in done:
        seeds = t.user_attrs["seeds"]
        assert len(set(seeds)) == 2 and seeds[0] == t.user_attrs["seed"] == trial_seed(0, t.number)
        per_seed = repeat_curves_of(t)["val_top1"]
        # what the pruner saw after every epoch is the mean over the seeds at that epoch
        assert [t.intermediate_values[e] for e in (1, 2, 3)] == pytest.approx(
            [statistics.fmean(c[e] for c in per_seed) for e in range(3)])
        assert t.value == pytest.approx(statistics.fmean(t.user_attrs["repeat_values"]))
        assert len({c[-1] for c in per_seed}) == 2 or per_seed[0] != per_seed[1]  # two different runs
    # each seed reproduces from what was recorded: compare --test retrains them all
    out = json.loads(work.cli("compare", "repeats", "--by", "filters", "--json", "--test").stdout)
    assert out["reproduced"] == "3/3"  # every seed of every trial retrained to the same score


@pytest.mark.slow
def test_a_pareto_front_is_listed_drawn_and_any_point_retrained(work: Work) -> None:
    work.cli("run", "pareto", "--workers", "2")
    study = optuna.load_study(study_name="pareto", storage=work.url)
    assert study.metric_names == ["val_top1", "params"]
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 5 and all(len(t.values) == 2 for t in done)
    assert all(t.values[1] == t.user_attrs["n_params"] for t in done)

    def dominated(a: optuna.trial.FrozenTrial) -> bool:
        return any(b.values[0] >= a.values[0] and b.values[1] <= a.values[1] and b.values != a.values for b in done)

    front = sorted(t.number for t in done if not dominated(t))
    shown = json.loads(work.cli("best", "pareto", "--json").stdout)
    assert [p["number"] for p in shown["front"]] == front and shown["objectives"] == ["val_top1", "params"]
    table = work.cli("best", "pareto").output
    assert "Pareto front over val_top1, params" in table and "--retrain --trial N" in table

    refused = work.cli("best", "pareto", "--retrain", expect=1).output
    assert "no single best trial" in refused and f"trial{'s' if len(front) > 1 else ''} {front[0]}" in refused
    assert "Traceback" not in refused and study_get(study, "hpsearch:retrain") is None

    pick = front[-1]
    rec = json.loads(work.cli("best", "pareto", "--retrain", "--trial", str(pick), "--seeds", "1", "--json").stdout)
    assert rec["best_trial"]["number"] == pick and rec["retrain"]["trial"] == pick
    assert rec["retrain"]["test_looks"] == 1
    assert rec["retrain"]["search_values"]["params"] == study.trials[pick].values[1]

    rows = json.loads(work.cli("trials", "pareto", "--format", "json").stdout)
    assert all(len(r["values"]) == 2 for r in rows if r["state"] == "COMPLETE")
    assert f"Pareto front {len(front)} trial" in work.cli("studies").output
    work.cli("report", "pareto")
    page = (work.path / "pareto-report.html").read_text()
    assert "Pareto front" in page and "Not shown: needs" not in page.split("Pareto front", 2)[-1][:2000]


def test_a_refit_trains_on_train_and_validation_and_says_so(work: Work, tiny_search: Finished) -> None:
    work.adopt(tiny_search)
    out = work.cli("best", "--retrain", "--refit", "--seeds", "1", "--json").stdout
    rec = json.loads(out)["retrain"]
    assert rec["refit"] is True and rec["test_looks"] == 1 and rec["val"] == {}
    run = rec["runs"][0]
    assert run["trained_on"] == "train+val" and run["val_top1"] is None and run["test_top1"] > 0.3
    settings = StoredSettings.from_dict(study_get(optuna.load_study(study_name="tiny", storage=work.url), SETTINGS))
    data = load_search_data(settings.data, Path("."))
    ckpt = torch.load(run["checkpoint"], weights_only=False)
    assert ckpt["metrics"]["trained_on"] == "train+val"
    shown = work.cli("best").output
    assert "on train + validation (refit)" in shown
    assert len(data.train) + len(data.val) > len(data.train)  # the refit saw the validation images too
    refused = work.cli("best", "--retrain", expect=0).output  # the record is shown, a refit, not redone
    assert "test split looked at 1 time" in refused
