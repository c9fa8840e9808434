"""The retrain's tables: one model, drawn for the terminal, the dashboard note and the report."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console

from hpsearch.fmt import summary
from hpsearch.views import tables
from hpsearch.views.publish import note_markdown


def record(seeds: int = 5, topk: int | None = 5) -> dict[str, Any]:
    """A classify retrain record shaped as results/retrain.py stores it (values chosen to be told apart)."""
    runs = [{"seed": 1000 + i, "seconds": 12.34 + i, "checkpoint": f"runs/s/trial3-seed{1000 + i}.pt",
             "val_loss": 0.05 + i / 100, "val_top1": 0.97 + i / 1000,
             "test_loss": 0.06 + i / 100, "test_top1": 0.96 + i / 1000,
             **({"test_topk": 0.995 + i / 10000} if topk else {})} for i in range(seeds)]
    metrics = ["loss", "top1", *(["topk"] if topk else [])]
    return {
        "trial": 3, "metric": "val_top1", "search_value": 0.9812, "seeds": [r["seed"] for r in runs],
        "epochs": 20, "device": "cpu", "runs": runs, "topk_k": topk, "task": {"kind": "classify"},
        "val": {m: summary([r[f"val_{m}"] for r in runs]) for m in ("loss", "top1")},
        "test": {m: summary([r[f"test_{m}"] for r in runs]) for m in metrics},
        "candidates": [{"trial": 3, "search_value": 0.9812, **summary([0.97, 0.971])},
                       {"trial": 8, "search_value": 0.9799, **summary([0.965, 0.969])}],
        "test_looks": 1, "params": {"lr": 0.001}, "model": {"name": "cnn", "blocks": 2}, "n_params": 1234,
    }


def terminal(table: tables.Table, width: int) -> list[str]:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    console.print(tables.to_rich(table))
    return console.export_text().splitlines()


def test_the_per_seed_table_fits_80_columns_whole() -> None:
    rec = record()
    lines = terminal(tables.retrain_seeds(rec), 80)
    assert max(len(line) for line in lines) <= 80
    assert "…" not in "".join(lines)
    test_top1 = rec["test"]["top1"]
    # the means over the standard deviations, the unit once in the header
    means = next(line for line in lines if line.split()[0] == "mean")
    stds = next(line for line in lines if line.split()[0] == "±")
    assert f"{100 * test_top1['mean']:.2f}" in means.split() and f"±{100 * test_top1['std']:.2f}" in stds.split()
    assert "top-1 %" in "".join(lines)
    assert sum(bool(re.search(r"\b100\d\b", line)) for line in lines) == 5  # each seed on one row, not wrapped


def test_seven_columns_of_a_reconstruction_retrain_fit_80_columns_whole() -> None:
    rec = record()
    rec["task"] = {"kind": "reconstruct", "loss": "mse"}
    for run in rec["runs"]:
        run.update(test_mse=0.026, test_psnr=16.1868, test_ssim=0.4286, val_psnr=16.5)
    rec["test"].update(mse=summary([0.026, 0.0264]), psnr=summary([16.1868, 16.2768]), ssim=summary([0.4286, 0.43]))
    rec["val"]["psnr"] = summary([16.5, 16.6])
    lines = terminal(tables.retrain_seeds(rec), 80)
    assert max(len(line) for line in lines) <= 80 and "…" not in "".join(lines)
    assert "16.1868" in "".join(lines) and "±0.0636" in "".join(lines)


def test_the_three_renderings_show_the_same_numbers() -> None:
    rec = record()
    t = tables.retrain_seeds(rec)
    md = "\n".join(tables.to_markdown(t))
    page = tables.to_html(t)
    text = "\n".join(terminal(t, 120))
    for run in rec["runs"]:
        for cell in (f"{run['test_loss']:.4f}", f"{100 * run['test_top1']:.2f}", f"{run['seconds']:.1f}"):
            assert cell in md and cell in page and cell in text
    mean = rec["test"]["top1"]
    assert f"**{100 * mean['mean']:.2f} ± {100 * mean['std']:.2f} %**" in md  # the total row is bold
    assert f"<b>{100 * mean['mean']:.2f} ± {100 * mean['std']:.2f} %</b>" in page
    # every renderer has the same columns in the same order
    head = ["seed", "test loss", "test top-1", "test top-5", "val top-1", "seconds"]
    assert md.splitlines()[0] == "| " + " | ".join(head) + " |"
    assert re.findall(r"<th>(.*?)</th>", page) == head


def test_the_test_score_is_the_summary_tables_strong_cell() -> None:
    rec = record()
    md = "\n".join(tables.to_markdown(tables.retrain_summary(rec)))
    test = rec["test"]["top1"]
    assert f"| test (5 seeds, mean ± std) | **{100 * test['mean']:.2f} ± {100 * test['std']:.2f} %** |" in md
    assert "| search score (trial 3, one seed) | 98.12 % |" in md


def test_candidates_only_with_several_and_the_chosen_one_marked() -> None:
    rec = record()
    text = "\n".join(terminal(tables.retrain_candidates(rec), 80))
    chosen = next(line for line in text.splitlines() if "✓" in line)
    assert chosen.split()[0] == "3"
    rec["candidates"] = rec["candidates"][:1]
    assert tables.retrain_candidates(rec) is None


def test_an_old_record_without_topk_or_task_renders() -> None:
    rec = record(seeds=1, topk=None)
    del rec["task"]  # records from before tasks are classify
    assert tables.retrain_seeds(rec).head == ["seed", "test loss", "test top-1", "val top-1", "seconds"]
    note = note_markdown("s", rec, [])
    assert "| 1000 | 0.0600 | 96.00 % | 97.00 % | 12.3 |" in note


def test_each_seeds_validation_at_its_best_and_its_last_epoch() -> None:
    """The reports' final table: loss, top-1, top-k at each run's best epoch, mean ± std over the runs."""
    rec = record(seeds=3, topk=3)
    tops = [[0.90, 0.95, 0.93], [0.91, 0.92, 0.94], [0.97, 0.96, 0.95]]  # best epochs 2, 3, 1
    for run, top in zip(rec["runs"], tops):
        run["curves"] = {"val_top1": top, "val_loss": [0.3, 0.2, 0.25], "val_topk": [0.99, 0.995, 0.998],
                         "train_loss": [0.5, 0.4, 0.3]}
    t = tables.retrain_validation(rec)
    assert t is not None
    assert t.head == ["seed", "best epoch", "loss best", "loss last", "top-1 best", "top-1 last", "top-3 best",
                      "top-3 last"]
    assert [r[1].value for r in t.rows] == [2, 3, 1]
    assert [r[4].value for r in t.rows] == [0.95, 0.94, 0.97] and [r[5].value for r in t.rows] == [0.93, 0.94, 0.95]
    assert [r[2].value for r in t.rows] == [0.2, 0.25, 0.3]  # the loss at the study metric's best epoch
    assert t.total is not None and t.total[4].value == summary([0.95, 0.94, 0.97])["mean"]
    lines = terminal(t, 80)
    assert max(len(line) for line in lines) <= 80 and "…" not in "".join(lines)
    assert "validation per seed" in note_markdown("s", rec, []).lower()
    rec["refit"] = True
    assert tables.retrain_validation(rec) is None  # a refit has no validation split left
    rec["refit"] = False
    for run in rec["runs"]:
        del run["curves"]
    assert tables.retrain_validation(rec) is None  # a record whose runs kept no curves
