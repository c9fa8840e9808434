"""`compare` reads any recorded metric per row, in the grid's order if asked, and names the command
that retrains its best row; `best --where` retrains that row, and a seed grid is answered by the
mean of a configuration, not by its luckiest seed. In-process, on a study written directly (no
training): these are questions of reading the record."""

from __future__ import annotations

import json
import re
import statistics
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from conftest import Work
from hpsearch.data import DataSpec
from hpsearch.errors import HpsearchError
from hpsearch.store.queries import best_trial, ranked_trials
from hpsearch.store.records import CURVES, SETTINGS
from hpsearch.study import samplers
from hpsearch.study.declaration import StoredSettings

# width 32 is the better configuration on average; the single best trial is a lucky seed of width 16
VALUES = {(32, 0): 0.80, (32, 1): 0.82, (32, 2): 0.81, (16, 0): 0.60, (16, 1): 0.90, (16, 2): 0.59}


def _grid_study(work: Work) -> optuna.Study:
    study = optuna.create_study(study_name="widths", storage=work.url, direction="maximize")
    grid = samplers.grid({"width": [16, 32], "seed": [0, 1, 2]})
    settings = StoredSettings(data=DataSpec("digits"), max_epochs=3, metric="val_top1", seed=0, module="widths",
                              sampler=grid)
    study.set_user_attr(SETTINGS, settings.to_dict())
    dist = {"width": CategoricalDistribution([32, 16]), "seed": CategoricalDistribution([0, 1, 2])}
    for (width, seed), v in VALUES.items():
        curves = {"val_top1": [v - 0.1, v + 0.05, v], "val_loss": [1.0, 0.5, 0.6],
                  "train_top1": [0.5, 0.7, 0.9 if width == 32 else 0.8]}
        study.add_trial(create_trial(params={"width": width, "seed": seed}, distributions=dist, value=v,
                                     state=TrialState.COMPLETE, intermediate_values=dict(enumerate(curves["val_top1"], 1)),
                                     user_attrs={"epochs": 3, "seed": seed, "seconds": 2.0 * width / 16,
                                                 "n_trainable": width * 100, "best_epoch": 2},
                                     system_attrs={CURVES: curves}))
    return study


def test_a_seed_grid_is_answered_by_the_best_mean_not_the_luckiest_seed(work: Work) -> None:
    study = _grid_study(work)
    lucky = max(study.trials, key=lambda t: t.value or 0)
    assert lucky.params["width"] == 16  # Optuna's best trial: the row with the worse mean
    assert best_trial(study).params == {"width": 32, "seed": 1}  # the best mean's best seed
    assert [t.params["width"] for t in ranked_trials(study)] == [32, 16]  # one candidate per configuration
    shown = work.cli("best", "widths").output
    assert "best trial 1," in shown and "chosen by the mean over seeds" in shown and "over trials 1, 2, 0" in shown
    answer = json.loads(work.cli("best", "widths", "--json").output)
    assert answer["chosen_by"]["trials"] == [1, 2, 0]
    assert answer["chosen_by"]["mean"] == pytest.approx(statistics.fmean([0.80, 0.82, 0.81]))


def test_compare_names_the_command_that_retrains_its_best_row_and_best_where_retrains_it(
        work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpsearch.results import retrain

    _grid_study(work)
    table = work.cli("compare", "widths", "--by", "width").output
    said = " ".join(table.split())
    (where,) = re.findall(r"hpsearch best widths --retrain --where (\S+)", said)
    assert where == "width=32"
    seen: list[retrain.RetrainRequest] = []

    def fake(study: optuna.Study, req: retrain.RetrainRequest, *a: Any) -> retrain.Retrained:
        seen.append(req)
        raise HpsearchError("stopped by the test")

    monkeypatch.setattr(retrain, "retrain", fake)
    work.cli("best", "widths", "--retrain", "--where", where, "--device", "cpu", expect=1)
    (req,) = seen
    study = optuna.load_study(study_name="widths", storage=work.url)
    assert study.trials[req.trial].params["width"] == 32 and req.named_by == "--where width=32"
    shown = work.cli("best", "widths", "--where", "width=16").output
    assert "the row width=16:" in shown and "over 3 trials (4, 3, 5)" in shown
    for bad, says in ((["--where", "widht=32"], "did you mean 'width'?"),
                      (["--where", "width=64"], "its values: 16, 32"),
                      (["--where", "width"], "PARAM=VALUE pairs"),
                      (["--where", "width=32", "--trial", "0"], "give one")):
        out = work.cli("best", "widths", *bad, expect=2).output
        assert says in out and out.count("\n") == 1 and "Traceback" not in out, out


def test_compare_shows_any_metric_at_the_best_or_last_epoch_in_the_grids_order(work: Work) -> None:
    _grid_study(work)

    def rows(*args: str) -> list[dict[str, Any]]:
        return json.loads(work.cli("compare", "widths", "--by", "width", "--json", *args).output)["groups"]

    assert [g["params"]["width"] for g in rows()] == [32, 16]  # by score
    assert [g["params"]["width"] for g in rows("--order", "grid")] == [16, 32]  # the grid's own order
    best = rows("--metrics", "val_top1,train_top1,val_loss,n_trainable,seconds")
    w32 = best[0]["metrics"]
    assert w32["val_top1"]["values"] == pytest.approx([0.85, 0.87, 0.86])  # epoch 2, each trial's best
    assert w32["train_top1"]["values"] == pytest.approx([0.7] * 3) and w32["val_loss"]["mean"] == pytest.approx(0.5)
    assert w32["n_trainable"]["mean"] == 3200 and w32["seconds"]["mean"] == 4.0
    final = rows("--metrics", "train_top1", "--at", "final", "--stat", "max")
    assert final[0]["metrics"]["train_top1"] == {"max": pytest.approx(0.9), "values": pytest.approx([0.9] * 3)}
    table = work.cli("compare", "widths", "--by", "width", "--metrics", "val_top1,train_top1,n_trainable").output
    assert "86.00 ± 1.00 %" in table and "3.2k" in table
    bad = work.cli("compare", "widths", "--by", "width", "--metrics", "val_top3", expect=2).output
    assert "no metric 'val_top3'" in bad and "they have:" in bad and bad.count("\n") == 1


def test_a_seed_dimension_is_no_axis_of_importances_parallel_coordinates_or_slices(work: Work) -> None:
    """Seeds are replicates: ranked or drawn as a setting, their noise reads as an effect."""
    from hpsearch.views import figures
    from hpsearch.views.importance import param_importances

    study = _grid_study(work)
    assert set(param_importances(study).values) == {"width"}
    axes = [d["label"] for d in figures.parallel_coordinates(study).data[0].dimensions]
    assert axes == ["val_top1", "width"]
    assert [a.text for a in figures.slices(study).layout.annotations] == ["width"]
