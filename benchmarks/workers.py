"""Workers benchmark: trained images per second with ``--workers 1, 2, 4`` on this machine.

Every trial is the same job (benchmarks/studies/reference.py: the reference CNN, 12k
FashionMNIST images, 2 epochs + 5k validation each), so throughput compares worker counts
only. Runs are interleaved (1, 2, 4, 1, 2, 4, …) on fresh SQLite files; medians reported.
"Wall" includes start-up (spawning, imports, data load); "steady" spans first trial start to
last trial end, from the database.

    python benchmarks/workers.py --root ../shared/datasets --trials 4 --repeats 3
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
from _results import emit

REPO = Path(__file__).resolve().parents[1]
IMAGES_PER_EPOCH = 12000 // 64 * 64  # the trainer drops the ragged last batch


def one_run(root: Path, workers: int, trials: int, db: Path) -> dict[str, float]:
    url = f"sqlite:///{db}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpsearch", "run", "reference", "--workers", str(workers),
                    "--n-trials", str(trials), "--pruner", "none", "--storage", url, "--device", "cpu",
                    "--studies-dir", str(REPO / "benchmarks" / "studies"), "--data-root", str(root)],
                   check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    wall = time.perf_counter() - t0
    done = optuna.load_study(study_name="reference", storage=url).trials
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    images = sum(t.user_attrs["epochs"] for t in done) * IMAGES_PER_EPOCH
    return {"wall_s": wall, "wall_images_per_s": images / wall, "steady_images_per_s": images / span,
            "threads_per_worker": done[0].user_attrs["threads"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    runs: dict[int, list[dict[str, float]]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for w in args.workers:
                r = one_run(args.root.resolve(), w, args.trials, Path(tmp) / f"w{w}-{rep}.db")
                runs[w].append(r)
                print(f"[{rep + 1}/{args.repeats}] workers={w}: {r}", file=sys.stderr, flush=True)
    result = {f"workers_{w}": {
        "threads_per_worker": rs[0]["threads_per_worker"],
        **{k: round(statistics.median(r[k] for r in rs), 1) for k in ("wall_s", "wall_images_per_s",
                                                                       "steady_images_per_s")},
        "runs_steady_images_per_s": [round(r["steady_images_per_s"]) for r in rs]} for w, rs in runs.items()}
    emit(result, args.json)


if __name__ == "__main__":
    main()
