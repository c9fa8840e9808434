"""Storage benchmark: what the study database costs per trial, and how big studies read back.

1. Overhead per trial: ``hpsearch run overhead`` (benchmarks/studies/overhead.py: the digits
   search space on 16 training images, 10 epochs, median pruner) with 1 and 8 workers on SQLite
   and Postgres. All workers run at once (HPSEARCH_CPU_SLOTS=0): with 8 they contend for the
   database as 8 machines would. Everything a trial costs besides its epochs counts: ask under
   the budget lock, TPE sampling, user attributes, per-epoch report + pruning check, heartbeats
   and tell, in core-seconds (a worker's wall seconds × its share of the cores).
   - whole run: first trial start to last trial end; with several workers this includes the
     other workers' start-up (imports, data, warm-up), a once-per-process cost;
   - steady state: each worker from its own first trial's start to its last trial's end;
     start-up is reported on its own (run start to a worker's first trial, median).
2. Read latency: a 10,000-trial study built with Optuna's API (6 epochs of intermediate values
   and hpsearch's user attributes per trial); wall time of ``hpsearch best`` and
   ``hpsearch trials --format csv`` as a user runs them (new process, imports included).

    python benchmarks/storage.py --trials 100 --big 10000 [--parts overhead read]
    git worktree add /tmp/old COMMIT   # then, old and new side by side, A/B/A/B:
    python benchmarks/storage.py --parts overhead --rounds 2 --against /tmp/old/src

Postgres runs on a throwaway cluster (tests/pgcluster.py) when its server binaries exist.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import optuna
from _results import emit
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpsearch.store.records import SETTINGS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def hpsearch(*args: str, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpsearch", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, cwd=REPO)
    return time.perf_counter() - t0


def overhead(url: str, workers: int, trials: int, src: Path | None = None) -> dict[str, float]:
    """One ``hpsearch run overhead``; ``src``: run the hpsearch of another source tree instead."""
    started = datetime.now()  # Optuna stamps trials with naive local time, so do we
    env = {"HPSEARCH_CPU_SLOTS": "0", **({"PYTHONPATH": str(src)} if src else {})}
    hpsearch("run", "overhead", "--workers", str(workers), "--n-trials", str(trials), "--storage", url,
             "--studies-dir", str(REPO / "benchmarks" / "studies"), "--device", "cpu", env=env)
    study = optuna.load_study(study_name="overhead", storage=url)
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    share = min(workers, os.cpu_count() or 1) / workers  # of a core, each worker (all run at once)
    epochs = sum(sum(t.user_attrs.get("curves", {}).get("seconds", [])) for t in done)
    # Whole run: first trial start to last trial end, every second of every busy core. With
    # more workers than one, this includes the other workers' start-up (imports, data load).
    whole = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    # Steady state: each worker from its first trial's start to its last trial's end, so the
    # cost of starting a process is left out; it is reported on its own as start-up.
    by_worker: dict[str, list[FrozenTrial]] = defaultdict(list)
    for t in done:
        by_worker[t.user_attrs["worker"]].append(t)
    spans = [(max(t.datetime_complete for t in ts) - min(t.datetime_start for t in ts)).total_seconds()
             for ts in by_worker.values()]
    startup = [(min(t.datetime_start for t in ts) - started).total_seconds() for ts in by_worker.values()]
    n = len(done)
    return {"trials": n, "workers_seen": len(by_worker),
            "per_trial_s": round(whole * share * workers / n, 4), "training_s": round(epochs * share / n, 4),
            "overhead_s": round((whole * workers - epochs) * share / n, 4),
            "steady_overhead_s": round((sum(spans) - epochs) * share / n, 4),
            "steady_overhead_share": round(1 - epochs / sum(spans), 4),  # of the workers' time
            "startup_s": round(statistics.median(startup), 2),
            "reports_per_trial": round(statistics.fmean(len(t.intermediate_values) for t in done), 1)}


def medians(runs: list[dict[str, float]]) -> dict[str, object]:
    return {"median": {k: statistics.median(r[k] for r in runs) for k in runs[0]}, "runs": runs}


def build_big(url: str, n: int) -> None:
    """A finished hpsearch-shaped study of n trials, written in bulk with Optuna's API."""
    from hpsearch.data import DataSpec
    from hpsearch.study.declaration import StoredSettings
    study = optuna.create_study(study_name="big", storage=url, direction="maximize")
    settings = StoredSettings(data=DataSpec("digits"), max_epochs=6, metric="val_top1", seed=0, module="digits")
    study.set_user_attr(SETTINGS, settings.to_dict())
    dists = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "filters": CategoricalDistribution([16, 32, 64]),
             "blocks": IntDistribution(1, 3), "optimizer": CategoricalDistribution(["adam", "sgd", "adamw"])}
    import random
    rng = random.Random(0)
    batch = []
    for i in range(n):
        params = {"lr": 10 ** rng.uniform(-4, -1), "filters": rng.choice([16, 32, 64]), "blocks": rng.randint(1, 3),
                  "optimizer": rng.choice(["adam", "sgd", "adamw"])}
        curve = [min(0.99, 0.5 + 0.08 * e + rng.random() * 0.05) for e in range(6)]
        batch.append(create_trial(
            params=params, distributions=dists, value=curve[-1], intermediate_values=dict(enumerate(curve, 1)),
            user_attrs={"epochs": 6, "seconds": rng.uniform(20, 60), "seed": i, "device": "cpu", "n_params": 12345,
                        "curves": {"train_loss": [1 - c for c in curve], "val_top1": curve}}))
        if len(batch) == 500:
            study.add_trials(batch)
            batch = []
    study.add_trials(batch)


def read_latency(url: str, repeats: int) -> dict[str, float]:
    best = [hpsearch("best", "big", "--storage", url) for _ in range(repeats)]
    rows = [hpsearch("trials", "big", "--storage", url, "--format", "csv") for _ in range(repeats)]
    version = [hpsearch("--version") for _ in range(repeats)]
    return {"best_s": round(statistics.median(best), 2), "trials_csv_s": round(statistics.median(rows), 2),
            "cli_startup_s": round(statistics.median(version), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100, help="trials per overhead run")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    p.add_argument("--big", type=int, default=10000, help="trials in the read-latency study")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--parts", nargs="+", choices=("overhead", "read"), default=["overhead", "read"])
    p.add_argument("--rounds", type=int, default=1, help="overhead runs per setting (median reported)")
    p.add_argument("--against", type=Path, metavar="SRC",
                   help="also time the hpsearch in SRC (e.g. src/ of `git worktree add /tmp/old COMMIT`), "
                        "alternating with this one run by run")
    p.add_argument("--json", type=Path, help="results file; parts not run keep their earlier results")
    args = p.parse_args()
    arms: dict[str, Path | None] = {"this": None, **({"against": args.against.resolve()} if args.against else {})}

    from pgcluster import PgCluster, bindir
    backends: dict[str, object] = {"sqlite": None}
    cluster = PgCluster.start() if bindir() is not None else None
    if cluster is not None:
        backends["postgres"] = cluster
    result: dict[str, dict[str, object]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, pg in backends.items():
                fresh = pg.create_database if pg is not None else None  # type: ignore[attr-defined]
                for w in args.workers if "overhead" in args.parts else ():
                    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
                    for i in range(args.rounds):
                        for arm, src in arms.items():  # A/B/A/B: both arms see the same machine noise
                            url = fresh() if fresh else f"sqlite:///{tmp}/overhead-{w}-{arm}-{i}.db"
                            runs[arm].append(r := overhead(url, w, args.trials, src))
                            print(f"{name} workers={w} {arm}: {r}", file=sys.stderr, flush=True)
                    summary: dict[str, object] = {arm: medians(got) for arm, got in runs.items()}
                    if args.against:
                        summary["against_src"] = str(args.against)
                    result.setdefault(name, {})[f"overhead_workers_{w}"] = (
                        summary if args.against or args.rounds > 1 else runs["this"][0])
                if "read" not in args.parts:
                    continue
                url = fresh() if fresh else f"sqlite:///{tmp}/big.db"
                t0 = time.perf_counter()
                build_big(url, args.big)
                built = time.perf_counter() - t0
                result.setdefault(name, {})["read_latency"] = r = {"trials": args.big, "build_s": round(built, 1),
                                                    **read_latency(url, args.repeats)}
                print(f"{name} {args.big} trials: {r}", file=sys.stderr, flush=True)
    finally:
        if cluster is not None:
            cluster.remove()
    emit(result, args.json, merge=True)


if __name__ == "__main__":
    main()
