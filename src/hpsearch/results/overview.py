"""`hpsearch data`: the dataset a study searches on, as the search sees it.

The training split exactly as the workers cut it — train and validation parts, their sizes and
class counts, the image size, channels and the per-channel mean/std the models are normalised
with — and one sample image per class from the train part. The test split is not read: its
images are looked at only by the counted look of `best --retrain` or `compare --test`.
Segmentation sets count pixels per class instead of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from hpsearch.data import load_search_data
from hpsearch.store.queries import settings_of


@dataclass(frozen=True)
class DataOverview:
    study: str
    dataset: str
    shape: tuple[int, ...]  # one image: (C, H, W)
    classes: list[str]
    train_images: int
    val_images: int
    train: list[int]  # images per class in the train part (pixels per class for masks)
    val: list[int]
    counted: str  # "images" or "pixels"
    mean: list[float]  # per channel, of the train part, in 0–1 units
    std: list[float]
    samples: np.ndarray = field(repr=False)  # one uint8 image per class (K×C×H×W); a class absent from train: zeros
    sample_masks: np.ndarray | None = field(default=None, repr=False)  # segmentation: their masks (K×H×W)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "dataset": self.dataset, "shape": list(self.shape), "classes": self.classes,
                "train_images": self.train_images, "val_images": self.val_images, "counted": self.counted,
                "train": dict(zip(self.classes, self.train)), "val": dict(zip(self.classes, self.val)),
                "mean": self.mean, "std": self.std, "test": "not read (only the counted test look reads it)"}


def overview(study: optuna.Study, data_root: Path) -> DataOverview:
    """The study's data as its workers load it (the recorded digest checked, as a run checks it)."""
    settings = settings_of(study)
    data = load_search_data(settings.data, data_root, "cpu", recorded=settings.train_digest,
                            files_hash=settings.data_hash)
    classes = list(data.info.classes)
    k = len(classes)
    masks = data.train.y.ndim == 3

    def counts(y: Any) -> list[int]:
        return [int(v) for v in np.bincount(y.flatten().numpy().astype(np.int64), minlength=k)[:k]]
    train_y = data.train.y.cpu()
    pixels = data.train.pixels(slice(None)).numpy()
    samples = np.zeros((k, *pixels.shape[1:]), dtype=np.uint8)
    sample_masks = np.zeros((k, *train_y.shape[1:]), dtype=np.uint8) if masks else None
    for c in range(k):
        has = (train_y.flatten(1) == c).any(1) if masks else train_y == c
        where = np.flatnonzero(has.numpy())
        if len(where):
            samples[c] = pixels[where[0]]
            if sample_masks is not None:
                sample_masks[c] = train_y[where[0]].numpy()
    return DataOverview(study.study_name, settings.data.label, tuple(data.info.shape), classes, len(data.train),
                        len(data.val), counts(train_y), counts(data.val.y.cpu()), "pixels" if masks else "images",
                        [round(float(v), 4) for v in data.mean], [round(float(v), 4) for v in data.std],
                        samples, sample_masks)
