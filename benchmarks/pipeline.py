"""Pipeline benchmark: one epoch of the reference CNN through hpsearch's trainer vs the yardsticks.

The yardsticks are run, not copied: ``../shared/bench/limit_epoch.py`` times (c) a DataLoader
with per-sample transforms, (b) a naive loop over a pre-normalised tensor and (d) the same in
channels-last, and measures a 1-thread fp32 matmul rate. This script times (a) hpsearch's
``fit`` on the same 12k FashionMNIST images with the same model (2 × [conv3×3 32 → BN → ReLU →
pool], dropout 0.2, dense 128), batch 64, Adam 1e-3. Runs are interleaved (a, yardstick, a,
yardstick, …) in fresh processes and the median of the repeats is reported.

    python benchmarks/pipeline.py --root ../shared/datasets --repeats 3 --threads 1 2

``--sweep`` times (a) alone at several batch sizes, eager and under ``torch.compile`` (two epochs
each: the first pays for compilation), to see what pushes it toward the matmul rate.

``--accuracy`` instead trains (a) and a plain PyTorch loop over the same tensors (b) for a few
epochs over several seeds and compares validation accuracy (same data, same model, same budget).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import emit

HERE = Path(__file__).resolve().parent
LIMIT = HERE.parent.parent / "shared" / "bench" / "limit_epoch.py"
MFLOP_PER_IMAGE = 13.4  # forward + backward of the reference CNN (limit_epoch.py's figure)
N_TRAIN, N_VAL = 12000, 5000


def reference_config(augment: str, batch_size: int = 64):  # noqa: ANN201 - TrialConfig, imported lazily
    from hpsearch import ModelConfig, OptimConfig, TrialConfig
    return TrialConfig(model=ModelConfig(blocks=2, filters=32, organisation="same", kernel=3, activation="relu",
                                         batch_norm=True, dropout=0.2, dense=128),
                       optim=OptimConfig(name="adam", lr=1e-3), batch_size=batch_size, augment=augment)


def load(root: Path):  # noqa: ANN201 - SearchData
    from hpsearch.data import DataSpec, load_search_data
    # 12k stratified training images and a 5k validation split of FashionMNIST's training set
    spec = DataSpec("fashion_mnist", val_fraction=N_VAL / 60000, split_seed=0, train_subset=N_TRAIN)
    return load_search_data(spec, root)


def one_epoch(root: Path, threads: int, aug: bool, batch_size: int = 64, compiled: bool = False,
              epochs: int = 1) -> dict[str, float]:
    """(a): hpsearch's last epoch in this process; train-only seconds and with 5k validation.

    ``compiled`` wraps the model in ``torch.compile`` (a what-if: the trainer itself does not);
    with ``epochs=2`` the second epoch shows the steady speed and the first the start-up cost.
    """
    import torch
    torch.set_num_threads(threads)
    import hpsearch.train.loop
    from hpsearch.train.loop import fit
    if compiled:
        build = hpsearch.train.loop.build
        hpsearch.train.loop.build = lambda *a: torch.compile(build(*a))  # type: ignore[assignment]
    data = load(root)
    t0 = time.perf_counter()
    cfg = reference_config("flip_crop" if aug else "none", batch_size)
    r = fit(cfg, data, epochs=epochs, seed=0, device=torch.device("cpu"))
    wall = time.perf_counter() - t0
    m = r.history[-1]
    return {"train_s": m.train_seconds, "epoch_with_val_s": m.seconds, "fit_wall_s": wall, "val_top1": m.val_top1,
            "first_epoch_s": r.history[0].seconds, "images": (len(data.train) // batch_size) * batch_size}


def _parse(line: str) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for kv in line.split():
        k, v = kv.split("=", 1)
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


def run_limit(root: Path, threads: int, aug: bool) -> dict[str, float | str]:
    cmd = [sys.executable, str(LIMIT), str(root), str(threads)] + (["aug"] if aug else [])
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return _parse(r.stdout.strip().splitlines()[-1])


def run_ours(root: Path, threads: int, aug: bool, batch_size: int = 64, compiled: bool = False,
             epochs: int = 1) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--root", str(root), "--one-epoch", "--threads", str(threads),
           "--batch-size", str(batch_size), "--train-epochs", str(epochs)]
    cmd += (["--aug"] if aug else []) + (["--compiled"] if compiled else [])
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def sweep(root: Path, repeats: int, threads: int, batch_sizes: list[int]) -> dict[str, object]:
    """(a) alone: batch size × eager/compiled, interleaved, median train seconds of the steady epoch."""
    runs: dict[str, list[dict[str, float]]] = {}
    for rep in range(repeats):
        for bs in batch_sizes:
            for compiled in (False, True):
                key = f"threads={threads} batch={bs} {'compiled' if compiled else 'eager'}"
                r = run_ours(root, threads, False, bs, compiled, epochs=2)
                runs.setdefault(key, []).append(r)
                print(f"[{rep + 1}/{repeats}] {key}: train {r['train_s']:.2f}s, first epoch {r['first_epoch_s']:.2f}s",
                      file=sys.stderr, flush=True)
    table = {}
    for key, rs in runs.items():
        train = statistics.median(r["train_s"] for r in rs)
        images = rs[0]["images"]
        table[key] = {"train_s": round(train, 2),
                      "first_epoch_s": round(statistics.median(r["first_epoch_s"] for r in rs), 2),
                      "images_per_s": round(images / train), "gflops": round(images * MFLOP_PER_IMAGE / 1e3 / train, 1),
                      "val_top1": [round(r["val_top1"], 4) for r in rs], "train_runs": [round(r["train_s"], 2) for r in rs]}
    return table


def timing(root: Path, repeats: int, threads: list[int]) -> dict[str, object]:
    rows: dict[str, dict[str, list[float]]] = {}
    for rep in range(repeats):
        for t in threads:
            for aug in (False, True):
                key = f"threads={t} aug={'on' if aug else 'off'}"
                ours = run_ours(root, t, aug)
                lim = run_limit(root, t, aug)
                r = rows.setdefault(key, {})
                for k, v in [("a_hpsearch", ours["train_s"]), ("a_with_val", ours["epoch_with_val_s"]),
                             ("b_tensor", lim["tensor_epoch_s"]), ("c_dataloader", lim["dataloader_epoch_s"]),
                             ("d_channels_last", lim["channels_last_epoch_s"]), ("matmul_gflops", lim["matmul_gflops"])]:
                    r.setdefault(k, []).append(float(v))
                print(f"[{rep + 1}/{repeats}] {key}: a={ours['train_s']:.2f}s b={lim['tensor_epoch_s']}s "
                      f"c={lim['dataloader_epoch_s']}s d={lim['channels_last_epoch_s']}s", file=sys.stderr, flush=True)
    images = N_TRAIN // 64 * 64
    table = {}
    for key, r in rows.items():
        med = {k: statistics.median(v) for k, v in r.items()}
        table[key] = {
            **{f"{k}_s": round(v, 2) for k, v in med.items() if k != "matmul_gflops"},
            **{f"gflops_{k}": round(images * MFLOP_PER_IMAGE / 1e3 / v, 1)
               for k, v in med.items() if k not in ("matmul_gflops", "a_with_val")},
            "matmul_gflops": round(med["matmul_gflops"], 1),
            "c_over_a": round(med["c_dataloader"] / med["a_hpsearch"], 2),
            "d_over_a": round(med["d_channels_last"] / med["a_hpsearch"], 2),
            "runs": {k: [round(x, 2) for x in v] for k, v in r.items()},
        }
    return table


def accuracy(root: Path, seeds: int, epochs: int) -> dict[str, object]:
    """(a) hpsearch's fit vs (b) a plain loop on the same tensors: validation top-1 after ``epochs``."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from hpsearch.models import build
    from hpsearch.tasks._classify import evaluate
    from hpsearch.train.loop import fit
    data = load(root)
    cfg = reference_config("none")
    ours, plain = [], []
    for seed in range(seeds):
        ours.append(fit(cfg, data, epochs=epochs, seed=seed, device=torch.device("cpu")).history[-1].val_top1)
        torch.manual_seed(seed)
        model = build(cfg.model, data.info)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(len(data.train))
            for i in range(0, len(perm), 64):
                j = perm[i:i + 64]
                opt.zero_grad()
                F.cross_entropy(model(data.train.x[j]), data.train.y[j]).backward()
                opt.step()
        plain.append(evaluate(model, data.val, None)[1])
        print(f"seed {seed}: hpsearch {ours[-1]:.4f}  plain {plain[-1]:.4f}", file=sys.stderr, flush=True)
    return {"epochs": epochs, "seeds": seeds,
            "a_hpsearch": {"mean": statistics.fmean(ours), "std": statistics.stdev(ours), "values": ours},
            "b_plain": {"mean": statistics.fmean(plain), "std": statistics.stdev(plain), "values": plain}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True, help="data root with FashionMNIST/raw")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--one-epoch", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--aug", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--train-epochs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--sweep", type=int, nargs="*", metavar="BATCH",
                   help="time (a) alone at these batch sizes, eager and compiled, at the first --threads")
    p.add_argument("--accuracy", action="store_true", help="compare accuracy instead of timing")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args()
    if args.one_epoch:
        print(json.dumps(one_epoch(args.root, args.threads[0], args.aug, args.batch_size, args.compiled,
                                   args.train_epochs)))
        return
    if args.sweep is not None:
        emit(sweep(args.root, args.repeats, args.threads[0], args.sweep or [64, 128, 256]), args.json)
        return
    result = accuracy(args.root, args.seeds, args.epochs) if args.accuracy else timing(args.root, args.repeats,
                                                                                       args.threads)
    emit(result, args.json)


if __name__ == "__main__":
    main()
