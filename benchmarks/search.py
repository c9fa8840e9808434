"""Search benchmark: `hpsearch run` vs ../shared/bench/baseline_optuna.py at the same budget.

Same space ranges (benchmarks/studies/anchor.py mirrors the baseline's), same data (12k
FashionMNIST training images, 5k validation), 5 epochs, batch 64, 2 worker processes on this
machine, and the same wall-clock budget:
no new trial starts after ``--budget`` seconds (both finish the trials they are running).
Runs alternate A/B/A/B on fresh SQLite files; each line reports epochs trained per minute,
trials, pruned fraction and best validation accuracy. The baseline prunes with Optuna's default
``MedianPruner()``; hpsearch with ``--pruner`` (its own default, median, unless given).

    python benchmarks/search.py --root ../shared/datasets --budget 600 --repeats 3 --pruner hyperband
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from _results import emit
from optuna.trial import TrialState

from hpsearch.run.pruners import PRUNERS

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO.parent / "shared" / "bench" / "baseline_optuna.py"


def summarise(url: str, study: str, wall: float) -> dict[str, float]:
    trials = optuna.load_study(study_name=study, storage=url).trials
    epochs = sum(len(t.intermediate_values) for t in trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    return {"wall_s": round(wall, 1), "trials": len(trials), "complete": len(done), "pruned": pruned,
            "pruned_fraction": round(pruned / max(1, len(trials)), 2), "epochs": epochs,
            "epochs_per_min": round(60 * epochs / wall, 2),
            "best_val_acc": round(max((t.value for t in done), default=float("nan")), 4)}


def run_hpsearch(root: Path, budget: float, db: Path, seed: int, pruner: str) -> dict[str, float]:
    url = f"sqlite:///{db}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpsearch", "run", "anchor", "--workers", "2", "--timeout", str(budget),
                    "--seed", str(seed), "--pruner", pruner, "--storage", url, "--device", "cpu", "--data-root", str(root),
                    "--studies-dir", str(REPO / "benchmarks" / "studies")],
                   check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    return summarise(url, "anchor", time.perf_counter() - t0)


def run_baseline(root: Path, budget: float, db: Path, seed: int) -> dict[str, float]:
    """The script prunes with its own MedianPruner()."""
    url = f"sqlite:///{db}"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(BASELINE), "--root", str(root), "--dataset", "FashionMNIST",
                        "--storage", url, "--study", "anchor", "--workers", "2", "--threads", "1",
                        "--timeout", str(budget), "--epochs", "5", "--train-subset", "12000", "--val-size", "5000",
                        "--seed", str(seed)], check=True, capture_output=True, text=True)
    line = r.stdout.strip().splitlines()[-1]
    assert re.match(r"wall_s=", line), line
    return summarise(url, "anchor", time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--budget", type=float, default=600)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pruner", choices=PRUNERS, default="median",
                   help="hpsearch's --pruner (the baseline keeps its own)")
    p.add_argument("--json", type=Path, help="write the results here (after every run, so a stopped run keeps them)")
    p.add_argument("--keep", type=Path, help="keep each run's SQLite file in this folder (per-trial analysis)")
    args = p.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"hpsearch": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for rep in range(args.repeats):
            arms = (("hpsearch", functools.partial(run_hpsearch, pruner=args.pruner)), ("baseline", run_baseline))
            for name, fn in arms:
                db = folder / f"{name}-{rep}.db"
                db.unlink(missing_ok=True)
                r = fn(args.root.resolve(), args.budget, db, seed=rep)
                rows[name].append(r)
                print(f"[{rep + 1}/{args.repeats}] {name}: {r}", file=sys.stderr, flush=True)
                if args.json is not None:  # after every run, so a stopped benchmark keeps what it measured
                    args.json.write_text(json.dumps(_result(rows, args.pruner), indent=2) + "\n")
    emit(_result(rows, args.pruner), None)


def _result(rows: dict[str, list[dict[str, float]]], pruner: str) -> dict[str, object]:
    arms = {name: {"median": {k: statistics.median(r[k] for r in rs) for k in rs[0]} if rs else {}, "runs": rs}
            for name, rs in rows.items()}
    return {"hpsearch_pruner": pruner, **arms}


if __name__ == "__main__":
    main()
