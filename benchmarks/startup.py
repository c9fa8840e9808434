"""Start-up benchmark: command → first trial, and the wall time of a short run, for source trees side by side.

A short search is mostly start-up: the supervisor and every worker import torch, Optuna and
the trainer. Each arm is a source tree run through ``PYTHONPATH`` (a clone at an older commit
is the usual "before"); arms are interleaved A B A B on fresh SQLite files, medians reported.
"First trial" is the earliest trial's start in the database minus the command's start.

    python benchmarks/startup.py --arm before=/tmp/base/src --arm after=src --workers 2 4 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]


def one_run(src: Path, workers: int, trials: int, db: Path) -> tuple[float, float]:
    url = f"sqlite:///{db}"
    start = time.time()
    subprocess.run([sys.executable, "-m", "hpsearch", "run", "digits", "--workers", str(workers),
                    "--n-trials", str(trials), "--storage", url, "--device", "cpu",
                    "--studies-dir", str(REPO / "studies")],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(src)})
    wall = time.time() - start
    trials_ = optuna.load_study(study_name="digits", storage=url).get_trials(deepcopy=False)
    first = min(t.datetime_start.timestamp() for t in trials_ if t.datetime_start is not None)  # local, as stored
    return wall, first - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", action="append", required=True, help="NAME=SRC: a source tree to run")
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arms = {name: Path(src).resolve() for name, src in (a.split("=", 1) for a in args.arm)}
    got: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for workers in args.workers:
                for name, src in arms.items():
                    db = Path(tmp) / f"{name}-{workers}-{rep}.db"
                    got.setdefault((name, workers), []).append(one_run(src, workers, args.trials, db))
                    print(name, workers, rep, *(f"{v:.2f}" for v in got[name, workers][-1]), flush=True)
    print(f"\n| arm | workers | first trial (s) | wall (s), {args.trials} digits trials |\n|---|---|---|---|")
    for (name, workers), runs in got.items():
        walls, firsts = zip(*runs)
        print(f"| {name} | {workers} | {statistics.median(firsts):.1f} ({', '.join(f'{f:.1f}' for f in firsts)}) "
              f"| {statistics.median(walls):.1f} ({', '.join(f'{w:.1f}' for w in walls)}) |")


if __name__ == "__main__":
    main()
