"""Storage-proxy benchmark: many workers on Postgres directly vs through ``hpsearch storage-proxy``.

One ``hpsearch run overhead --workers W`` per arm (benchmarks/studies/overhead.py: the digits
space on 16 training images, so a trial is nearly all bookkeeping), every worker at once
(HPSEARCH_CPU_SLOTS=0), on a fresh database of a throwaway Postgres cluster (tests/pgcluster.py):

- ``direct``: workers on ``postgresql+psycopg://…``;
- ``proxy``: one ``hpsearch storage-proxy`` on that database, workers on ``grpc://…``.

Measured per arm: the connections Postgres holds to the study database (``pg_stat_activity``,
sampled every 0.25 s from a connection to another database, so the sampler is not counted),
finished trials per second (first trial start to last trial end, from the database, and over
the whole command), FAIL trials, and whether the budget came out exact (finished == --trials).
The arms alternate (direct, proxy, direct, …) with ``--rounds``.

    python benchmarks/proxy.py --workers 32 --trials 96 --rounds 1 --json benchmarks/results/proxy.json
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
from _results import emit
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


class ConnectionSampler:
    """Counts the backends connected to one database, every ``every`` seconds, in a thread."""

    def __init__(self, port: int, password: str, database: str, every: float = 0.25) -> None:
        import psycopg

        self._con = psycopg.connect(f"host=127.0.0.1 port={port} user=postgres password={password} dbname=postgres",
                                    autocommit=True)
        self.database, self.every, self.samples = database, every, []  # type: list[int]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            row = self._con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                    (self.database,)).fetchone()
            self.samples.append(int(row[0]))
            self._stop.wait(self.every)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._con.close()


def one_arm(cluster, arm: str, workers: int, trials: int) -> dict[str, object]:  # noqa: ANN001
    from pgcluster import PASSWORD

    url = cluster.create_database()
    database = url.rsplit("/", 1)[1]
    proxy = None
    storage = url
    if arm == "proxy":
        proxy = subprocess.Popen([sys.executable, "-m", "hpsearch", "storage-proxy", "--storage", url, "--port", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        line = proxy.stdout.readline()  # type: ignore[union-attr]
        storage = "grpc://127.0.0.1:" + re.search(r"127\.0\.0\.1:(\d+)", line).group(1)  # type: ignore[union-attr]
    env = {**os.environ, "HPSEARCH_CPU_SLOTS": "0"}
    try:
        with ConnectionSampler(cluster.port, PASSWORD, database) as sampler:
            t0 = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "hpsearch", "run", "overhead", "--workers", str(workers),
                                  "--n-trials", str(trials), "--storage", storage, "--device", "cpu",
                                  "--studies-dir", str(REPO / "benchmarks" / "studies")],
                                 capture_output=True, text=True, env=env, cwd=REPO)
            wall = time.perf_counter() - t0
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.communicate(timeout=60)
    study = optuna.load_study(study_name="overhead", storage=url)  # read back directly, not through the proxy
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    busy = [s for s in sampler.samples if s > 0]
    errors = [ln for ln in (run.stdout + run.stderr).splitlines() if "error" in ln.lower() or "unreachable" in ln]
    return {"exit": run.returncode, "finished": len(done), "exact_budget": len(done) == trials,
            "failed_trials": len(failed), "error_lines": errors[:5],
            "workers_seen": len({t.user_attrs.get("worker") for t in done}),
            "pg_connections_max": max(sampler.samples), "pg_connections_median": statistics.median(busy or [0]),
            "trials_per_s_span": round(len(done) / span, 2), "trials_per_s_wall": round(len(done) / wall, 2),
            "wall_s": round(wall, 1), "span_s": round(span, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--trials", type=int, default=96)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--arms", nargs="+", choices=("direct", "proxy"), default=["direct", "proxy"])
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    from pgcluster import PgCluster

    cluster = PgCluster.start()
    runs: dict[str, list[dict[str, object]]] = {arm: [] for arm in args.arms}
    try:
        for i in range(args.rounds):
            for arm in args.arms:
                runs[arm].append(r := one_arm(cluster, arm, args.workers, args.trials))
                print(f"[{i + 1}/{args.rounds}] {arm}: {r}", file=sys.stderr, flush=True)
    finally:
        cluster.remove()
    emit({"workers": args.workers, "trials": args.trials, "cores": os.cpu_count(), "runs": runs}, args.json)


if __name__ == "__main__":
    main()
