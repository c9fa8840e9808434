"""Experiments as the reports run them: stored samplers, an exhaustive grid handed out across
processes, seeds as a grid dimension, and `hpsearch compare`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from conftest import Work
from hpsearch import Study, TrialConfig, samplers
from hpsearch.store.records import SETTINGS, study_get, trial_record
from hpsearch.study.declaration import StoredSettings
from hpsearch.study.samplers import CELL, SamplerSpec
from processes import start_run, wait_for

CELLS = {(h, o) for h in (8, 16) for o in ("adam", "sgd_hi", "sgd_lo")}


def cells_of(trials: list[optuna.trial.FrozenTrial]) -> Counter:
    return Counter((t.params["hidden"], t.params["opt"]) for t in trials if t.state == TrialState.COMPLETE)


def test_grid_cells_are_the_product_in_order_and_bad_grids_say_why() -> None:
    g = samplers.grid({"h": [32, 64], "opt": ["a", "b", "c"]})
    assert [tuple(c.values()) for c in g.cells()] == [(32, "a"), (32, "b"), (32, "c"), (64, "a"), (64, "b"), (64, "c")]
    assert SamplerSpec.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    assert SamplerSpec.from_dict(None) == SamplerSpec("tpe")  # a study made before samplers were stored
    for bad, why in [({}, "at least one dimension"), ({"h": []}, "no values"), ({"h": [1, 1]}, "repeats"),
                     ({"seed": [0.5]}, "integers"), ({"h": [[1, 2]]}, "not a str")]:
        with pytest.raises(ValueError, match=why):
            samplers.grid(bad)
    with pytest.raises(ValueError, match="unknown sampler 'anneal'"):
        SamplerSpec("anneal").check()
    with pytest.raises(ValueError, match="unknown sampler 'anneal'"):  # a study module's typo: refused when it loads
        Study(dataset="digits", space=lambda t: TrialConfig(), sampler=SamplerSpec("anneal"))
    for spec in (samplers.tpe(multivariate=True, group=True), samplers.random(), samplers.qmc(), samplers.cmaes(),
                 samplers.nsga2(), g):
        assert isinstance(spec.build(seed=1, n_trials=10), optuna.samplers.BaseSampler)


def test_a_grid_the_space_cannot_read_is_refused_before_any_trial(work: Work) -> None:
    (work.path / "studies" / "typo.py").write_text(
        (work.path / "studies" / "grid6.py").read_text().replace('GRID = {"hidden"', 'GRID = {"hiden"')
        .replace('GRID["hidden"]', '[8, 16]'))
    out = work.cli("run", "typo", expect=1).output
    assert "grid dimension 'hiden' is never asked by the space function" in out and "Traceback" not in out
    (work.path / "studies" / "outside.py").write_text(
        (work.path / "studies" / "grid6.py").read_text().replace('"hidden": [8, 16]', '"hidden": [8, 12]')
        .replace('GRID["hidden"]', '[8, 16]'))
    out = work.cli("run", "outside", expect=1).output
    assert "grid cell {'hidden': 12, 'opt': 'adam'} is outside what the space function asks" in out
    assert not work.db.exists() or optuna.get_all_study_names(work.url) == []


@pytest.mark.slow
def test_two_runs_at_once_share_one_grid_each_cell_exactly_once(store: Work) -> None:
    """`run --workers 2` and `run --workers 1` on one study at the same time (two folders, one
    database): exactly six finished trials, one per cell; the budget is the grid's size."""
    work = store
    other = work.path / "elsewhere"
    other.mkdir()
    (other / "studies").mkdir()
    (other / "studies" / "grid6.py").write_text((work.path / "studies" / "grid6.py").read_text())
    env = {**os.environ, "HPSEARCH_STORAGE": work.url}
    first = subprocess.Popen([sys.executable, "-m", "hpsearch", "run", "grid6", "--workers", "2"], cwd=work.path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen([sys.executable, "-m", "hpsearch", "run", "grid6", "--workers", "1"], cwd=other,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    study = optuna.load_study(study_name="grid6", storage=work.url)
    trials = study.get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 6
    assert cells_of(trials) == Counter(CELLS)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED)]
    assert StoredSettings.from_dict(study_get(study, SETTINGS)).sampler.kind == "grid"

    again = work.cli("run", "grid6").output  # nothing missing: nothing runs
    assert "budget reached (6/6 finished)" in again
    groups = json.loads(work.cli("compare", "grid6", "--by", "opt", "--json").output)
    assert groups["by"] == ["opt"] and sum(g["n"] for g in groups["groups"]) == 6
    assert sorted(g["params"]["opt"] for g in groups["groups"]) == ["adam", "sgd_hi", "sgd_lo"]
    assert all(g["n"] == 2 and g["final_epoch"] == 4 for g in groups["groups"])


@pytest.mark.slow
def test_a_killed_cell_is_run_again_by_the_next_run(work: Work) -> None:
    # cells of ~25 epochs, so one is surely mid-training when the whole run is killed
    (work.path / "studies" / "grid6.py").write_text(
        (work.path / "studies" / "grid6.py").read_text().replace("max_epochs=4", "max_epochs=25"))
    proc = start_run(work, "grid6", "--workers", "1")

    def trials() -> list[optuna.trial.FrozenTrial]:
        try:
            return optuna.load_study(study_name="grid6", storage=work.url).get_trials()
        except KeyError:
            return []

    def running() -> list[optuna.trial.FrozenTrial]:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[0])
        return [t for t in trials() if t.state == TrialState.RUNNING and t.intermediate_values]
    wait_for(running, timeout=180)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    abandoned = [t for t in trials() if t.state == TrialState.RUNNING]  # what the kill really left behind
    assert abandoned
    again = start_run(work, "grid6", "--workers", "2", grace=3)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out
    after = trials()
    assert cells_of(after) == Counter(CELLS), out
    by_number = {t.number: t for t in after}
    done_cells = [t.user_attrs[CELL] for t in after if t.state == TrialState.COMPLETE]
    for t in abandoned:
        assert by_number[t.number].state == TrialState.FAIL
        assert t.user_attrs[CELL] in done_cells


@pytest.mark.slow
def test_a_ladder_of_variants_over_seeds_compares_with_mean_and_std(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    work.cli("run", "ladder", "--workers", "2")
    trials = optuna.load_study(study_name="ladder", storage=work.url).get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 9
    assert sorted((t.params["variant"], t.params["seed"]) for t in done) == sorted(
        (v, s) for v in ("baseline", "+dropout", "+bn") for s in (0, 1, 2))
    assert all(t.user_attrs["seed"] == t.params["seed"] for t in done)  # the grid's seed is the training seed
    table = work.cli("compare", "ladder", "--by", "variant").output
    for variant in ("baseline", "+dropout", "+bn"):
        assert variant in table
    assert "± " in table and "best row by validation mean" in table and "hpsearch best ladder --retrain --where variant=" in table
    result = json.loads(work.cli("compare", "ladder", "--by", "variant", "--json").output)
    means = [g["mean"] for g in result["groups"]]
    assert means == sorted(means, reverse=True) and all(g["n"] == 3 and len(g["values"]) == 3 for g in result["groups"])
    work.cli("report", "ladder")  # a grid study's report compares by its dimensions, seed aside
    page = (work.path / "ladder-report.html").read_text()
    assert "Comparison by variant" in page and "mean ± std over each group" in page
    for base in ("top1", "loss", "topk"):  # every task metric, validation beside the training pass, groups overlaid
        assert f"val_{base} (solid) and train_{base} (dashed) per epoch" in page
    import torch

    from hpsearch.results import compare_test
    threads_seen: list[int] = []
    real_fit = compare_test.fit

    def fit_counting_threads(*a, **kw):  # noqa: ANN002, ANN003, ANN202 - the real fit, watched
        threads_seen.append(torch.get_num_threads())
        return real_fit(*a, **kw)
    monkeypatch.setattr(compare_test, "fit", fit_counting_threads)
    tested = json.loads(work.cli("compare", "ladder", "--by", "variant", "--json", "--test").stdout)
    recorded = {t.user_attrs["threads"] for t in optuna.load_study(study_name="ladder", storage=work.url).trials}
    assert len(threads_seen) == 9 and set(threads_seen) == recorded  # retrained with the search's thread count
    assert tested["test_look"] == 1 and tested["test_looks"] == 1
    assert tested["reproduced"] == "9/9"  # CPU, same threads: every retrain is the search's run again
    assert all(0 <= g["test"]["test_top1"]["mean"] <= 1 and len(g["test"]["test_top1"]["values"]) == 3
               for g in tested["groups"])
    study = optuna.load_study(study_name="ladder", storage=work.url)
    assert study.user_attrs["hpsearch:test_looks"] == 1
    shown = work.cli("compare", "ladder", "--by", "variant", "--test").output
    assert "look 2 at this study's test split" in shown
    assert optuna.load_study(study_name="ladder", storage=work.url).user_attrs["hpsearch:test_looks"] == 2
    bad = work.cli("compare", "ladder", "--by", "varaint", expect=2).output
    assert "no parameter 'varaint'" in bad and "seed, variant" in bad


@pytest.mark.slow
def test_best_retrains_any_trial_and_a_different_one_needs_force(work: Work) -> None:
    work.cli("run", "grid6", "--workers", "2")
    study = optuna.load_study(study_name="grid6", storage=work.url)
    other = next(t for t in study.trials if t.number != study.best_trial.number)
    shown = work.cli("best", "grid6", "--retrain", "--trial", str(other.number), "--seeds", "1",
                     "--epochs", "6").output
    assert "test look 1" in shown
    rec = study_get(optuna.load_study(study_name="grid6", storage=work.url), "hpsearch:retrain")
    assert rec["trial"] == other.number and rec["epochs"] == 6 and rec["search_epochs"] == 4
    assert len(rec["runs"][0]["curves"]["val_top1"]) == 6
    again = work.cli("best", "grid6", "--retrain", "--trial", str(study.best_trial.number), expect=1).output
    assert f"the retrain record is for trial {other.number}" in again and "--force" in again
    assert "no trial 99" in work.cli("best", "grid6", "--retrain", "--trial", "99", "--force", expect=1).output


@pytest.mark.slow
def test_the_sampler_is_stored_and_a_join_with_another_is_refused(work: Work) -> None:
    work.cli("run", "tiny", "--n-trials", "2", "--sampler", "random")
    study = optuna.load_study(study_name="tiny", storage=work.url)
    assert study_get(study, SETTINGS)["sampler"] == {"kind": "random"}
    work.cli("run", "tiny", "--n-trials", "3")  # the module names no sampler: it joins with the stored one
    out = work.cli("run", "tiny", "--n-trials", "4", "--sampler", "qmc", expect=1).output
    assert "sampler: stored {'kind': 'random'}" in out and "--name NEW_NAME" in out


@pytest.mark.slow
def test_rungs_train_their_own_epochs_and_listed_cells_give_unequal_repeats(work: Work) -> None:
    """An ablation ladder with 10 epochs for one rung and 25 for another, and 3 runs of one variant
    beside 1 of another, in one study: TrialConfig(epochs=…) and a grid of listed cells. One worker
    holds all four at once, so the short trials finish while the long one trains on."""
    work.cli("run", "rungs", "--workers", "1", "--trials-per-worker", "4")
    study = optuna.load_study(study_name="rungs", storage=work.url)
    done = [trial_record(t, "val_top1") for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(study.trials) == 4 and len(done) == 4  # the listed cells, each exactly once
    by_variant = {t.number: t.params["variant"] for t in study.trials}
    assert sorted(by_variant.values()) == ["long", "short", "short", "short"]
    for rec in done:
        want = 2 if by_variant[rec.number] == "short" else 4
        assert rec.epochs == want and len(rec.curves["val_top1"]) == want
    rows = json.loads(work.cli("compare", "rungs", "--by", "variant", "--json", "--metrics", "epochs").output)
    assert {g["params"]["variant"]: (g["n"], g["metrics"]["epochs"]["mean"]) for g in rows["groups"]} == {
        "short": (3, 2.0), "long": (1, 4.0)}


def test_a_config_longer_than_the_study_or_a_bad_cell_list_is_refused() -> None:
    with pytest.raises(ValueError, match="above the study's max_epochs 4; raise Study"):
        TrialConfig(epochs=5).epochs_in(4)
    assert TrialConfig().epochs_in(4) == 4 and TrialConfig(epochs=2).epochs_in(4) == 2
    assert "epochs" not in TrialConfig().to_dict()  # configs stored before it existed read back the same
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        TrialConfig(epochs=0)
    with pytest.raises(ValueError, match="listed twice"):
        samplers.grid([{"v": "a", "seed": 0}, {"v": "a", "seed": 0}])
    with pytest.raises(ValueError, match="the same names"):
        samplers.grid([{"v": "a"}, {"w": "a"}])
    listed = samplers.grid([{"v": "a", "seed": 0}, {"v": "a", "seed": 1}, {"v": "b", "seed": 0}])
    assert SamplerSpec.from_dict(listed.to_dict()).cells() == [{"v": "a", "seed": 0}, {"v": "a", "seed": 1},
                                                                {"v": "b", "seed": 0}]
