"""Sampler benchmark: which TPE variant finds better configs for the same number of trials.

Each sampler runs the same study (benchmarks/studies/sampler_digits.py: the anchor's
16-parameter conditional space on digits, 6 epochs, no pruning, so only the sampler differs)
for ``--trials`` trials with 2 workers, once per study seed; the samplers are interleaved seed
by seed so machine noise hits them alike. Reported per sampler: the best validation accuracy
after the budget and the mean of the top 5 (how good the neighbourhood it found is), median
and spread over seeds.

    python benchmarks/samplers.py --trials 30 --seeds 4 --json benchmarks/results/samplers.json
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
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
KINDS = ("tpe", "tpe_mv", "tpe_mv_group", "random")


def one(kind: str, seed: int, trials: int, folder: Path) -> dict[str, float]:
    url = f"sqlite:///{folder / f'{kind}-{seed}.db'}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpsearch", "run", "sampler_digits", "--workers", "2",
                    "--n-trials", str(trials), "--seed", str(seed), "--pruner", "none", "--storage", url,
                    "--device", "cpu", "--studies-dir", str(REPO / "benchmarks" / "studies")],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "HPSEARCH_BENCH_SAMPLER": kind})
    done = sorted((t.value for t in optuna.load_study(study_name="sampler_digits", storage=url).trials
                   if t.state == TrialState.COMPLETE), reverse=True)
    return {"best": done[0], "top5": statistics.fmean(done[:5]), "complete": len(done),
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for kind in kinds:
                runs[kind].append(one(kind, seed, args.trials, Path(tmp)))
                print(kind, seed, runs[kind][-1], file=sys.stderr, flush=True)
    summary = {k: {m: {"median": round(statistics.median(r[m] for r in rs), 4),
                       "min": round(min(r[m] for r in rs), 4), "max": round(max(r[m] for r in rs), 4)}
                   for m in ("best", "top5", "wall_s")} for k, rs in runs.items()}
    emit({"command": " ".join(sys.argv), "trials": args.trials, "seeds": args.seeds, "summary": summary,
          "runs": runs}, args.json)


if __name__ == "__main__":
    main()
