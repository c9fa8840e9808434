"""Backbone benchmark: a torchvision resnet18 at 64×64 on the CPU, hpsearch's resident pipeline vs
a torchvision Dataset + per-sample transforms + DataLoader loop (what a user would write).

FashionMNIST's 28×28 images are shown to the network at 64×64, three ways, each in a fresh
process, interleaved (A, B, C, A, B, C, …), the median of the repeats reported:

- ``resident_batch``: hpsearch ``fit`` with ``Torchvision(arch="resnet18", min_size=64)``: the data
  stays resident at 28×28 and each batch is resized on the device (bilinear) inside the model;
- ``resident_once``: hpsearch ``fit`` on data resized to 64×64 once, before training;
- ``dataloader``: ``torchvision.datasets.FashionMNIST`` with ``Resize(64), ToTensor(), Normalize``,
  ``DataLoader(batch_size=64, shuffle=True)`` (num_workers=0, like ../shared/bench/limit_epoch.py),
  the same resnet18 (1-channel first conv, 10-class head), Adam 1e-3.

Each arm trains two epochs over the same ``--images`` training images and reports the second
epoch's training seconds (the first pays one-time kernel set-up).

    python benchmarks/backbone.py --root ../shared/datasets --images 2048 --repeats 3 --threads 2
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

ARMS = ("resident_batch", "resident_once", "dataloader")
SIZE = 64
BATCH = 64


def _data(root: Path, images: int):  # noqa: ANN202 - SearchData
    from hpsearch.data import DataSpec, load_search_data

    return load_search_data(DataSpec("fashion_mnist", val_fraction=0.01, split_seed=0, train_subset=images), root)


def resident(root: Path, images: int, once: bool) -> dict[str, float]:
    import dataclasses

    import torch
    import torch.nn.functional as F

    from hpsearch import OptimConfig, Torchvision, TrialConfig
    from hpsearch.data import SearchData, Tensors
    from hpsearch.train.loop import fit

    data = _data(root, images)
    prep = 0.0
    if once:
        t0 = time.perf_counter()

        def up(t: Tensors) -> Tensors:
            return Tensors(F.interpolate(t.x, size=(SIZE, SIZE), mode="bilinear", align_corners=False), t.y)

        info = dataclasses.replace(data.info, size=SIZE)
        data = SearchData(info, up(data.train), up(data.val), data.mean, data.std)
        prep = time.perf_counter() - t0
    cfg = TrialConfig(model=Torchvision(arch="resnet18", min_size=0 if once else SIZE),
                      optim=OptimConfig(name="adam", lr=1e-3), batch_size=BATCH)
    r = fit(cfg, data, epochs=2, seed=0, device=torch.device("cpu"))
    return {"train_s": r.history[-1].train_seconds, "first_epoch_train_s": r.history[0].train_seconds,
            "prepare_s": prep, "images": (len(data.train) // BATCH) * BATCH, "resident_mb":
            (data.train.x.numel() + data.val.x.numel()) * 4 / 2**20}


def dataloader(root: Path, images: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    import torchvision
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    from hpsearch.data import DataSpec
    from hpsearch.data._split import stratified_split, stratified_subset

    tf = transforms.Compose([transforms.Resize(SIZE), transforms.ToTensor(), transforms.Normalize((0.286,), (0.353,))])
    ds = torchvision.datasets.FashionMNIST(str(root), train=True, transform=tf, download=False)
    spec = DataSpec("fashion_mnist", val_fraction=0.01, split_seed=0, train_subset=images)
    train_idx, _ = stratified_split(ds.targets, spec.val_fraction, spec.split_seed)
    train_idx = train_idx[stratified_subset(ds.targets[train_idx], images, spec.split_seed)]
    loader = DataLoader(Subset(ds, train_idx.tolist()), batch_size=BATCH, shuffle=True, drop_last=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    seconds = []
    for _ in range(2):
        model.train()
        t0 = time.perf_counter()
        n = 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        seconds.append(time.perf_counter() - t0)
    return {"train_s": seconds[-1], "first_epoch_train_s": seconds[0], "prepare_s": 0.0, "images": n}


def child(arm: str, root: Path, images: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    out = dataloader(root, images) if arm == "dataloader" else resident(root, images, once=arm == "resident_once")
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", choices=ARMS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.root, a.images, a.threads)
        return
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for _ in range(a.repeats):
        for arm in ARMS:
            p = subprocess.run([sys.executable, __file__, "--child", arm, "--root", str(a.root), "--images",
                                str(a.images), "--threads", str(a.threads)], capture_output=True, text=True, check=True)
            line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))
            runs[arm].append(json.loads(line[7:]))
            print(arm, runs[arm][-1], file=sys.stderr, flush=True)
    med = {arm: statistics.median(r["train_s"] for r in rs) for arm, rs in runs.items()}
    emit({"backbone": {
        "command": " ".join(["python", "benchmarks/backbone.py"] + sys.argv[1:]),
        "model": "torchvision resnet18, 1-channel conv1, 10 classes, 64x64 input, batch 64, Adam 1e-3, CPU",
        "images": a.images, "threads": a.threads, "median_train_s": med,
        "images_per_s": {arm: runs[arm][0]["images"] / s for arm, s in med.items()},
        "dataloader_over": {arm: med["dataloader"] / med[arm] for arm in ARMS},
        "runs": runs,
    }}, a.json)


if __name__ == "__main__":
    main()
