"""Issue 19's GPU targets in one script (< 6 minutes on one card): run it where a GPU is lent.

Measures, on the first CUDA device:

1. ``epoch``: the reference CNN (2 × conv32 + BN, dense 128, dropout 0.2, Adam 1e-3) on 55k
   FashionMNIST images, batch 64, one epoch (the second: the first pays for cuDNN's warm-up and
   compilation): hpsearch's eager ``fit``, the same with ``HPSEARCH_CAPTURE=1`` (CUDA graphs), and
   a DataLoader loop (4 workers, pinned memory, per-sample normalisation) over the same images.
   Targets: captured ≤ 0.4 s, ≥ 7× the DataLoader.
2. ``fused``: K = 5 seeds of that CNN fused (``hpsearch.train.fused``), eager and captured, seconds per
   model-epoch. Target ≤ 0.15 s.
3. ``retrain``: ``best --retrain``'s trainer (``retrain._fit_seeds``) on the fashion_mnist study's
   CNN (3 blocks 32 → 64 → 128, dense 128), one seed vs 5 seeds (fused on CUDA), ``--epochs`` each.
   Target: 5 seeds' wall ≤ 1.5 × one seed's.
4. ``search``: ``hpsearch run studies/fashion_mnist.py --device cuda --timeout T`` with 1 and 4
   workers on a fresh SQLite study; epochs finished per minute. Target ≥ 3 × issue 19's 4-worker
   figure (157 epochs in 75 s).
5. ``pack``: a variant × seed grid of the study's trunk (4 learning rates × 2 seeds, 2 epochs each,
   same shapes) run three ways on a fresh SQLite study: one worker one trial at a time, four
   workers sharing the card, and one worker with ``--trials-per-worker 8`` (the eight trials
   fused into one model). Wall seconds and the ratios to one-at-a-time.

Data: ``--root DIR`` holding ``DIR/FashionMNIST/raw/train-images-idx3-ubyte`` and
``train-labels-idx1-ubyte`` (torchvision's layout, uncompressed: gunzip the ``.gz`` files
torchvision downloads; 47 MB). Nothing else is read; no test split.

    python benchmarks/gpu.py --root DIR --json benchmarks/results/gpu.json

Without a CUDA device it says so in one line and exits 2. ``--device cpu --quick`` runs every part
on a few hundred images (one digits trial for the search, a 4-cell digits grid for the pack,
fused as on CUDA; the retrain fused, as on CUDA) to check
the script itself, not to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import emit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VAL = 5000  # of FashionMNIST's 60k training images: 55k train, as issue 19 measured


def reference_config(batch_size: int = 64):  # noqa: ANN201 - TrialConfig, imported lazily
    from hpsearch import CNN, OptimConfig, TrialConfig
    return TrialConfig(CNN(blocks=2, filters=32, organisation="same", dropout=0.2, dense=128),
                       OptimConfig(name="adam", lr=1e-3), batch_size)


def study_config(batch_size: int = 128):  # noqa: ANN201 - the fashion_mnist study's trunk, mid-space choices
    from hpsearch import CNN, OptimConfig, TrialConfig
    return TrialConfig(CNN(blocks=3, filters=32, organisation="double", activation="gelu", dropout=0.3, dense=128),
                       OptimConfig(name="adamw", lr=2e-3, weight_decay=1e-4, scheduler="cosine"), batch_size,
                       "flip")


def load(root: Path, device: str, quick: bool):  # noqa: ANN201 - SearchData
    from hpsearch.data import DataSpec, load_search_data
    spec = DataSpec("fashion_mnist", val_fraction=(500 if quick else VAL) / 60000, split_seed=0,
                    train_subset=512 if quick else None)
    return load_search_data(spec, root, device)


def sync(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def epoch_seconds(data: Any, device: str, capture: bool, epochs: int = 2) -> dict[str, Any]:
    """hpsearch's own loop: the last epoch's training seconds, eager or captured."""
    import torch

    from hpsearch.train.loop import Training
    from hpsearch.train.options import Speedups
    run = Training(reference_config(), data, epochs=epochs, seed=0, device=torch.device(device),
                   speedups=Speedups(capture=capture))
    for _ in range(epochs):
        m = run.epoch()
    sync(device)
    return {"train_s": round(m.train_seconds, 3), "val_top1": round(m.val_top1, 4),
            "captured": run.forward.capturing, "capture_failed": run.forward.reason}


def dataloader_seconds(data: Any, device: str, quick: bool) -> dict[str, Any]:
    """The yardstick: the same images through a DataLoader (4 workers, pinned), per-sample transform."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset

    from hpsearch.models import build

    x, y, mean, std = data.train.x.cpu(), data.train.y.cpu(), float(data.mean[0]), float(data.std[0])

    class Images(Dataset):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return (x[i].float() / 255 - mean) / std, y[i]

    torch.manual_seed(0)
    model = build(reference_config().model, data.info).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loader = DataLoader(Images(), batch_size=64, shuffle=True, drop_last=True, num_workers=0 if quick else 4,
                        pin_memory=device == "cuda", persistent_workers=not quick)
    seconds = 0.0
    for _ in range(2):  # the second epoch: workers started, cuDNN warm
        t0 = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        sync(device)
        seconds = time.perf_counter() - t0
    return {"train_s": round(seconds, 3)}


def fused_seconds(data: Any, device: str, k: int, capture: bool) -> dict[str, Any]:
    import torch

    from hpsearch.train.fused import train_together
    from hpsearch.train.options import Speedups
    group = train_together([reference_config()] * k, data, epochs=2, seeds=list(range(k)),
                           device=torch.device(device), speedups=Speedups(fuse=True, capture=capture))
    group.epoch()
    last = group.epoch()
    sync(device)
    train = sum(m.train_seconds for m in last.values())  # type: ignore[union-attr]
    captured = getattr(getattr(group, "step_forward", None), "capturing", False)
    return {"k": k, "fused": group.fused, "not_fused_because": group.reason, "captured": captured,
            "train_s": round(train, 3), "per_model_epoch_s": round(train / k, 3)}


def retrain_seconds(data: Any, device: str, seeds: int, epochs: int) -> dict[str, Any]:
    import torch

    from hpsearch.results.retrain import _fit_seeds
    from hpsearch.tasks import classify
    from hpsearch.train.options import Speedups
    # on the CPU only the --quick check runs here: take the fused path that CUDA takes
    speedups = Speedups(fuse=True if device == "cpu" else None)
    out: dict[str, Any] = {"epochs": epochs}
    for k in (1, seeds):
        t0 = time.perf_counter()
        fits = _fit_seeds(study_config(), data, list(range(k)), epochs, torch.device(device), speedups, classify(),
                          lambda *_: None, lambda *_: None)
        sync(device)
        out[f"seeds_{k}_wall_s"] = round(time.perf_counter() - t0, 2)
        out[f"seeds_{k}_fused"] = all(f.fused for f in fits) if k > 1 else False
    out["ratio"] = round(out[f"seeds_{seeds}_wall_s"] / out["seeds_1_wall_s"], 2)
    return out


def search_throughput(root: Path, device: str, workers: int, timeout: float, quick: bool) -> dict[str, Any]:
    """A real ``hpsearch run`` in a scratch folder; epochs finished per minute of wall time."""
    import optuna
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        study = REPO / "studies" / ("digits.py" if quick else "fashion_mnist.py")
        cmd = [sys.executable, "-m", "hpsearch", "run", str(study), "--storage", url, "--device", device,
               "--workers", str(workers), "--data-root", str(root)]
        cmd += ["--n-trials", "1"] if quick else ["--timeout", str(timeout)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - t0
        name = study.stem
        trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
        epochs = sum(int(t.user_attrs.get("epochs") or 0) for t in trials)
    return {"workers": workers, "timeout_s": timeout, "wall_s": round(wall, 1), "trials": len(trials),
            "epochs": epochs, "epochs_per_min": round(epochs / wall * 60, 1)}


PACK_STUDY = """
from hpsearch import CNN, OptimConfig, Study, TrialConfig, samplers

GRID = {{"lr": {lrs}, "seed": [0, 1]}}


def search_space(trial):
    return TrialConfig(CNN(blocks=3, filters=32, organisation="double", activation="gelu", dropout=0.3, dense=128),
                       OptimConfig(name="adamw", lr=trial.suggest_categorical("lr", GRID["lr"]), weight_decay=1e-4),
                       128)


study = Study(dataset="{dataset}", space=search_space, max_epochs={epochs}, val_fraction={val},
              sampler=samplers.grid(GRID))
"""


def pack_seconds(root: Path, device: str, quick: bool) -> dict[str, Any]:
    """The grid of :data:`PACK_STUDY` (8 same-shaped trials; 4 with ``quick``) one at a time, 4 workers,
    and 8 per worker."""
    import optuna
    out: dict[str, Any] = {}
    ways = {"one_at_a_time": ["--workers", "1"], "workers_4": ["--workers", "4"],
            "trials_per_worker_8": ["--workers", "1", "--trials-per-worker", "8"]}
    for name, extra in ways.items():
        with tempfile.TemporaryDirectory() as tmp:
            module = Path(tmp) / "pack.py"
            module.write_text(PACK_STUDY.format(dataset="digits" if quick else "fashion_mnist",
                                                lrs=[1e-3, 2e-3] if quick else [5e-4, 1e-3, 2e-3, 4e-3],
                                                epochs=1 if quick else 2, val=0.2 if quick else VAL / 60000))
            url = f"sqlite:///{tmp}/bench.db"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "hpsearch", "run", str(module), "--storage", url, "--device", device,
                            "--data-root", str(root), "--pruner", "none", *extra],
                           check=True, capture_output=True, text=True, cwd=tmp,
                           env={**os.environ, **({"HPSEARCH_FUSE": "1"} if quick else {})})  # quick: the CUDA path
            wall = time.perf_counter() - t0
            trials = optuna.load_study(study_name="pack", storage=url).get_trials(deepcopy=False)
            out[name] = {"wall_s": round(wall, 1), "complete": sum(t.state.name == "COMPLETE" for t in trials),
                         "fused": sum(bool(t.user_attrs.get("fused_with")) for t in trials),
                         "train_s": round(sum(float(t.user_attrs.get("seconds") or 0) for t in trials), 1)}
    base = out["one_at_a_time"]["wall_s"]
    out["speedup"] = {k: round(base / v["wall_s"], 2) for k, v in out.items() if k != "one_at_a_time"}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True, help="folder with FashionMNIST/raw/train-*-ubyte")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--quick", action="store_true", help="a few hundred images: checks the script, measures nothing")
    p.add_argument("--k", type=int, default=5, help="fused seeds (default 5)")
    p.add_argument("--retrain-epochs", type=int, default=3)
    p.add_argument("--search-timeout", type=float, default=60.0)
    p.add_argument("--parts", nargs="+", default=["epoch", "fused", "retrain", "search", "pack"],
                   choices=["epoch", "fused", "retrain", "search", "pack"])
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args()

    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here; run it where a GPU is lent "
              "(or with --device cpu --quick to check the script)", file=sys.stderr)
        raise SystemExit(2)
    if not (args.root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        print(f"benchmarks/gpu.py: {args.root}/FashionMNIST/raw/train-images-idx3-ubyte not found; "
              "--root needs FashionMNIST's uncompressed train-*-ubyte files", file=sys.stderr)
        raise SystemExit(2)
    t_start = time.perf_counter()
    data = load(args.root, args.device, args.quick)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__, "train_images": len(data.train), "quick": args.quick}

    def part(name: str, fn: Any, *a: Any) -> Any:
        t0 = time.perf_counter()
        value = fn(*a)
        print(f"{name}: {json.dumps(value)} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
        return value

    if "epoch" in args.parts:
        eager = part("epoch eager", epoch_seconds, data, args.device, False)
        captured = part("epoch captured", epoch_seconds, data, args.device, True)
        loader = part("epoch dataloader", dataloader_seconds, data, args.device, args.quick)
        result["epoch"] = {"eager": eager, "captured": captured, "dataloader": loader,
                           "captured_speedup": round(eager["train_s"] / captured["train_s"], 2),
                           "dataloader_over_captured": round(loader["train_s"] / captured["train_s"], 2)}
    if "fused" in args.parts:
        k = 2 if args.quick else args.k
        result["fused"] = {"eager": part("fused eager", fused_seconds, data, args.device, k, False),
                           "captured": part("fused captured", fused_seconds, data, args.device, k, True)}
    if "retrain" in args.parts:
        result["retrain"] = part("retrain", retrain_seconds, data, args.device, 2 if args.quick else args.k,
                                 1 if args.quick else args.retrain_epochs)
    if "search" in args.parts:
        result["search"] = [part(f"search {w} workers", search_throughput, args.root, args.device, w,
                                 args.search_timeout, args.quick) for w in ((1,) if args.quick else (1, 4))]
    if "pack" in args.parts:
        result["pack"] = part("pack", pack_seconds, args.root, args.device, args.quick)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
