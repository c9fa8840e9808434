"""Image-folder benchmark: decode once (cold) vs read the cache (warm), and one epoch vs DataLoader.

Builds (once) a folder of 64×64 RGB JPEGs in torchvision's ImageFolder layout — FashionMNIST
images, upscaled and tinted per class so they are real photographs' worth of JPEG work —
then, each part in a fresh process:

* **cold**: ``prepare`` with no cache (list, hash every file, decode + resize with threads,
  write the uint8 cache) and ``load_search_data``, as the first ``hpsearch run`` pays;
* **warm**: the same with the cache present, as every later worker, run and retrain pays;
* **epoch**: one epoch of the reference CNN (2 × [conv3×3 32 → BN → ReLU → pool], dropout 0.2,
  dense 128, Adam 1e-3, batch 64) through hpsearch's ``fit`` on the resident data, vs the same
  model in a plain loop over ``torchvision.datasets.ImageFolder`` + ``ToTensor`` + ``Normalize``
  + ``DataLoader(shuffle=True, num_workers=2)``, interleaved, median of the repeats.

    python benchmarks/folder.py --images 10000 --repeats 2 --threads 2 --json benchmarks/results/folder.json

``--start-only`` times the two starts alone (merged into the same JSON file).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import emit

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "datasets"
SIZE = 64
TINTS = [(1.0, 0.6, 0.6), (0.6, 1.0, 0.6), (0.6, 0.6, 1.0), (1.0, 1.0, 0.5), (1.0, 0.5, 1.0),
         (0.5, 1.0, 1.0), (0.9, 0.7, 0.5), (0.5, 0.7, 0.9), (0.8, 0.8, 0.8), (1.0, 0.8, 0.6)]


def make_folder(folder: Path, images: int) -> None:
    """``folder/{train,test}/<class>/*.jpg``: 90 % train, 10 % test, 10 classes."""
    if (folder / "done").exists():
        return
    import numpy as np
    from PIL import Image
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = SHARED / "FashionMNIST" / "raw"
    x = read_image_file(str(raw / "train-images-idx3-ubyte"))[:images].numpy()
    y = read_label_file(str(raw / "train-labels-idx1-ubyte"))[:images].numpy()
    shutil.rmtree(folder, ignore_errors=True)
    for i, (img, c) in enumerate(zip(x, y)):
        split = "test" if i % 10 == 0 else "train"
        out = folder / split / f"c{int(c)}"
        out.mkdir(parents=True, exist_ok=True)
        rgb = np.stack([img * t for t in TINTS[int(c)]], axis=-1).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb, "RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC).save(out / f"{i:05d}.jpg", quality=90)
    (folder / "done").write_text("ok\n")


def spec(folder: Path):  # noqa: ANN201 - DataSpec
    from hpsearch import datasets
    from hpsearch.data import DataSpec
    return DataSpec(datasets.image_folder(folder, size=(SIZE, SIZE)), val_fraction=0.1)


def start(folder: Path, threads: int) -> dict[str, float]:
    """prepare + load_search_data, as a run's supervisor and a worker do."""
    import torch
    torch.set_num_threads(threads)
    from hpsearch.data import load_search_data, prepare
    t0 = time.perf_counter()
    prepare(spec(folder), folder)
    t1 = time.perf_counter()
    data = load_search_data(spec(folder), folder)
    t2 = time.perf_counter()
    return {"prepare_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0, "train_images": len(data.train),
            "resident_mb": (data.train.x.numel() + data.val.x.numel()) / 2**20}


def reference_config():  # noqa: ANN201 - TrialConfig
    from hpsearch import ModelConfig, OptimConfig, TrialConfig
    return TrialConfig(model=ModelConfig(blocks=2, filters=32, organisation="same", kernel=3, activation="relu",
                                         batch_norm=True, dropout=0.2, dense=128),
                       optim=OptimConfig(name="adam", lr=1e-3), batch_size=64)


def ours(folder: Path, threads: int) -> dict[str, float]:
    import torch
    torch.set_num_threads(threads)
    from hpsearch.data import load_search_data
    from hpsearch.train.loop import fit
    data = load_search_data(spec(folder), folder)
    r = fit(reference_config(), data, epochs=1, seed=0, device=torch.device("cpu"))
    m = r.history[-1]
    return {"train_s": m.train_seconds, "images": (len(data.train) // 64) * 64, "val_top1": m.val_top1}


def dataloader(folder: Path, threads: int) -> dict[str, float]:
    """The usual pipeline: ImageFolder decodes each JPEG every epoch in DataLoader workers."""
    import torch
    import torch.nn.functional as F
    from torchvision import datasets as tvd
    from torchvision import transforms
    torch.set_num_threads(threads)
    from hpsearch.data import DatasetInfo
    from hpsearch.models import build
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.25,) * 3)])
    ds = tvd.ImageFolder(str(folder / "train"), transform=tf)
    n_train = int(len(ds) * 0.9)  # the same share hpsearch trains on (it keeps 10 % for validation)
    subset = torch.utils.data.Subset(ds, torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n_train])
    loader = torch.utils.data.DataLoader(subset, batch_size=64, shuffle=True, num_workers=2, drop_last=True,
                                         persistent_workers=False)
    info = DatasetInfo("bench", 3, SIZE, tuple(ds.classes), ("none",))
    torch.manual_seed(0)
    model = build(reference_config().model, info).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    t0 = time.perf_counter()
    images = 0
    for x, y in loader:
        loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        images += len(y)
    return {"train_s": time.perf_counter() - t0, "images": images}


PARTS = {"start": start, "ours": ours, "dataloader": dataloader}


def child(part: str, folder: Path, threads: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", part, "--folder", str(folder), "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folder", type=Path, default=Path("/tmp/hpsearch-folder-bench"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", choices=PARTS)
    ap.add_argument("--start-only", action="store_true", help="time the cold and warm starts, not the epochs")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(PARTS[args.child](args.folder, args.threads)))
        return
    make_folder(args.folder, args.images)
    cold, warm, a, b = [], [], [], []
    for _ in range(args.repeats):
        shutil.rmtree(args.folder / ".hpsearch-cache", ignore_errors=True)
        cold.append(child("start", args.folder, args.threads))
        warm.append(child("start", args.folder, args.threads))
    for _ in range(0 if args.start_only else args.repeats):  # interleaved: drift hits both arms alike
        a.append(child("ours", args.folder, args.threads))
        b.append(child("dataloader", args.folder, args.threads))

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    if args.start_only:
        emit({"folder_start": {"images": args.images, "threads": args.threads, "cold": cold, "warm": warm,
                               "cold_total_s": med(cold, "total_s"), "warm_total_s": med(warm, "total_s")}},
             args.json, merge=True)
        return
    emit({"folder": {
        "images": args.images, "threads": args.threads, "size": SIZE,
        "cold": cold, "warm": warm, "ours": a, "dataloader": b,
        "cold_total_s": med(cold, "total_s"), "warm_total_s": med(warm, "total_s"),
        "cold_over_warm": med(cold, "total_s") / med(warm, "total_s"),
        "ours_train_s": med(a, "train_s"), "dataloader_train_s": med(b, "train_s"),
        "dataloader_over_ours": med(b, "train_s") / med(a, "train_s"),
    }}, args.json)


if __name__ == "__main__":
    main()
