"""Fused vs separate training on the CPU: K same-shaped runs as one vmapped model, or one by one.

Times the second epoch's training pass (the first pays for lazy initialisation) of K runs of one
config with K seeds, trained (a) one after another, as ``best --retrain --seeds K`` and
``Study(repeats=K)`` did before fusion, and (b) fused by :mod:`hpsearch.train.fused`. Two models:

- ``digits``: the digits study's kind of CNN (2 blocks of 32 → 64 filters, BN, dense 64, Adam)
  on its 1,078 training images (8×8);
- ``fashion``: the fashion_mnist study's CNN (3 blocks 32 → 64 → 128, BN, GELU, dropout 0.3,
  dense 128, AdamW + cosine) on a stratified subset of FashionMNIST's training images (28×28).

Each measurement runs in a fresh process at the given thread count; the cases are interleaved
(separate, fused, separate, …) and the median over ``--repeats`` is reported.

    python benchmarks/fused.py --root ../shared/datasets --threads 1 2 --ks 2 3 5 --batch-sizes 64 128 \\
        --json benchmarks/results/fused.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import emit

FASHION_TRAIN = 2048  # images per epoch for the fashion model: enough steps to time, short enough for K=5


def config(model: str, batch_size: int):  # noqa: ANN201 - TrialConfig, imported lazily
    from hpsearch import CNN, OptimConfig, TrialConfig
    if model == "digits":
        return TrialConfig(CNN(blocks=2, filters=32, kernel=3, dense=64), OptimConfig(name="adam", lr=3e-3), batch_size)
    return TrialConfig(CNN(blocks=3, filters=32, organisation="double", kernel=3, activation="gelu", batch_norm=True,
                           dropout=0.3, dense=128),
                       OptimConfig(name="adamw", lr=2e-3, weight_decay=1e-4, scheduler="cosine"), batch_size)


def load(model: str, root: Path):  # noqa: ANN201 - SearchData
    from hpsearch.data import DataSpec, load_search_data
    if model == "digits":
        return load_search_data(DataSpec("digits", val_fraction=0.2), root)
    return load_search_data(DataSpec("fashion_mnist", val_fraction=1 / 12, split_seed=0,
                                     train_subset=FASHION_TRAIN), root)


def one(root: Path, model: str, batch_size: int, k: int, threads: int, fused: bool) -> dict[str, float]:
    """Two epochs of K runs in this process; the second epoch's training seconds, all K together."""
    import torch
    torch.set_num_threads(threads)
    from hpsearch.train.fused import train_together
    data = load(model, root)
    cfg = config(model, batch_size)
    t0 = time.perf_counter()
    group = train_together([cfg] * k, data, epochs=2, seeds=list(range(k)), device=torch.device("cpu"), fuse=fused)
    if fused and not group.fused:
        raise SystemExit(f"{model} did not fuse: {group.reason}")
    group.epoch()
    last = group.epoch()
    wall = time.perf_counter() - t0
    train = sum(m.train_seconds for m in last.values())  # type: ignore[union-attr]
    return {"train_s": train, "per_model_epoch_s": train / k, "wall_s": wall,
            "val_top1": statistics.fmean(m.val_top1 for m in last.values())}  # type: ignore[union-attr]


def run_one(root: Path, model: str, batch_size: int, k: int, threads: int, fused: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--root", str(root), "--one", model, str(batch_size), str(k), str(threads),
           "1" if fused else "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def timing(root: Path, models: list[str], ks: list[int], batch_sizes: list[int], threads: list[int],
           repeats: int) -> dict[str, object]:
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    for rep in range(repeats):
        for t in threads:
            for model in models:
                for bs in batch_sizes:
                    for k in ks:
                        key = f"{model} batch={bs} K={k} threads={t}"
                        for fused in (False, True):
                            r = run_one(root, model, bs, k, t, fused)
                            runs.setdefault(key, {}).setdefault("fused" if fused else "separate", []).append(r)
                            print(f"[{rep + 1}/{repeats}] {key} {'fused' if fused else 'separate'}: "
                                  f"{r['train_s']:.2f}s for {k} model-epochs", file=sys.stderr, flush=True)
    table: dict[str, object] = {}
    for key, modes in runs.items():
        med = {mode: statistics.median(r["train_s"] for r in rs) for mode, rs in modes.items()}
        k = int(key.split("K=")[1].split()[0])
        table[key] = {"separate_s": round(med["separate"], 3), "fused_s": round(med["fused"], 3),
                      "separate_per_model_epoch_s": round(med["separate"] / k, 3),
                      "fused_per_model_epoch_s": round(med["fused"] / k, 3),
                      "speedup": round(med["separate"] / med["fused"], 2),
                      "runs": {mode: [round(r["train_s"], 3) for r in rs] for mode, rs in modes.items()}}
    return {"fashion_train_images": FASHION_TRAIN, "repeats": repeats, "cases": table}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("."), help="data root with FashionMNIST/raw (for the fashion model)")
    p.add_argument("--models", nargs="+", default=["digits", "fashion"], choices=["digits", "fashion"])
    p.add_argument("--ks", type=int, nargs="+", default=[2, 3, 5])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args()
    if args.one:
        model, bs, k, t, fused = args.one
        print(json.dumps(one(args.root, model, int(bs), int(k), int(t), fused == "1")))
        return
    emit(timing(args.root, args.models, args.ks, args.batch_sizes, args.threads, args.repeats), args.json)


if __name__ == "__main__":
    main()
