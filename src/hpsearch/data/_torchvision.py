"""torchvision's classification sets as they lie on disk: EMNIST, and any other by class name.

Both read the files torchvision's own classes download (``ROOT/<Name>/...``), so a folder a
user already filled for torchvision works as it is; with internet, a missing set is fetched
by torchvision's real download code, offline the error names the files and the folder.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpsearch.data._cache import CACHE_FOLDER, cache_dir, cache_key, cached, content_hash, drop
from hpsearch.data._sources import DatasetInfo, Source, Split
from hpsearch.errors import DatasetError, DatasetMissing

if TYPE_CHECKING:
    import torch

_MERGED = set("cijklmopsuvwxyz")  # lowercase letters EMNIST merges into their uppercase form
_ALL = string.digits + string.ascii_uppercase + string.ascii_lowercase
EMNIST_CLASSES: dict[str, tuple[str, ...]] = {
    "byclass": tuple(_ALL),
    "bymerge": tuple(c for c in _ALL if c not in _MERGED),
    "balanced": tuple(c for c in _ALL if c not in _MERGED),
    "letters": tuple(string.ascii_lowercase),  # labels 1..26 on disk, shifted to 0..25
    "digits": tuple(string.digits),
    "mnist": tuple(string.digits),
}
HANDWRITING_AUGMENTS = ("none", "pad_crop", "rotation")  # no flips: a mirrored 'b' is a 'd'


def _root(own: str | None, given: Path) -> Path:
    return Path(own).expanduser() if own else given


@dataclass(frozen=True)
class EMNIST(Source):
    """EMNIST's raw IDX files: ``ROOT/EMNIST/raw/emnist-<split>-{train,test}-{images,labels}-idx…``.

    The files store every image transposed (NIST's column-major scan); :meth:`decode`
    transposes them back, so letters read upright as they do in MNIST.
    """

    split: str = "balanced"
    root: str | None = None  # default: the command's --data-root

    kind: ClassVar[str] = "emnist"

    def __post_init__(self) -> None:
        if self.split not in EMNIST_CLASSES:
            raise ValueError(f"EMNIST split must be one of {', '.join(EMNIST_CLASSES)}, got {self.split!r}")

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "split": self.split, "root": self.root}

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(f"emnist_{self.split}", 1, (28, 28), EMNIST_CLASSES[self.split], HANDWRITING_AUGMENTS)

    @property
    def fetched_by(self) -> str:  # type: ignore[override]
        return (f"the files in gzip.zip that torchvision.datasets.EMNIST(ROOT, split={self.split!r}, download=True) "
                "fetches from NIST, un-gzipped")

    def files(self, root: Path, split: Split) -> list[Path]:
        raw = _root(self.root, root) / "EMNIST" / "raw"
        stem = f"emnist-{self.split}-{split}"
        return [raw / f"{stem}-images-idx3-ubyte", raw / f"{stem}-labels-idx1-ubyte"]

    def download(self, root: Path) -> None:
        from torchvision.datasets import EMNIST as TvEMNIST

        TvEMNIST(str(_root(self.root, root)), split=self.split, train=True, download=True)

    def content_hash(self, root: Path) -> str:
        files = [p for s in ("train", "test") for p in self.files(root, s) if p.is_file()]
        base = files[0].parent if files else _root(self.root, root)
        return content_hash(files, base, cache_dir(base, root))

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.datasets.mnist import read_image_file, read_label_file

        images, labels = self.files(root, split)
        x = read_image_file(str(images)).transpose(1, 2).unsqueeze(1).contiguous()
        y = read_label_file(str(labels)).long()
        if self.split == "letters":
            y = y - 1
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.info.num_classes):
            raise DatasetError(f"{labels}: labels outside 0..{self.info.num_classes - 1} for EMNIST "
                               f"{self.split!r}; is it another split's file?")
        return x, y


@dataclass(frozen=True)
class TorchvisionSet(Source):
    """Any torchvision classification dataset by class name, read through that class.

    MNIST-style sets (KMNIST, QMNIST...) and CIFAR-100, SVHN, STL10 hand over their arrays
    whole (``.data``); others are iterated image by image and must be given a ``size``. The
    result is cached as uint8 tensors like an image folder, so only the first start pays.
    """

    name: str
    root: str | None = None
    size: tuple[int, int] | None = None
    channels: int | None = None  # None: as the dataset stores them

    kind: ClassVar[str] = "torchvision"
    cached: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            object.__setattr__(self, "size", (self.size, self.size))
        elif self.size is not None:
            object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {self.channels}")

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "root": self.root,
                "size": list(self.size) if self.size else None, "channels": self.channels}

    @property
    def fetched_by(self) -> str:  # type: ignore[override]
        return f"what torchvision.datasets.{self.name}(ROOT, download=True) fetches"

    def _cls(self) -> Any:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.name, None)
        if not isinstance(cls, type):
            raise ValueError(f"torchvision.datasets has no dataset {self.name!r} (names are case-sensitive, "
                             "e.g. 'KMNIST', 'CIFAR100', 'SVHN')")
        return cls

    def _folder(self, root: Path) -> Path:
        self._cls()  # a misspelt name is said before anything is looked for
        return _root(self.root, root) / self.name

    def files(self, root: Path, split: Split) -> list[Path]:
        return [self._folder(root)]  # torchvision's class knows the files; the folder must exist

    @property
    def label(self) -> str:
        return self.name.lower()

    @cached_property
    def info(self) -> DatasetInfo:
        from hpsearch.data._spec import default_data_root

        part = self._decoded(default_data_root() if self.root is None else Path(self.root), "train")
        x = part["x"]
        augments = HANDWRITING_AUGMENTS if x.shape[1] == 1 else ("none", "flip", "pad_crop", "flip_crop", "color_jitter")
        return DatasetInfo(self.name.lower(), int(x.shape[1]), (int(x.shape[2]), int(x.shape[3])),
                           tuple(part["classes"]), augments)

    def check(self, root: Path) -> None:
        self._decoded(root, "train")

    def download(self, root: Path) -> None:
        for split in ("train", "test"):
            self._open(root, split, download=True)

    def content_hash(self, root: Path) -> str:
        folder = self._folder(root)
        if not folder.is_dir():
            self._missing(root, "no such folder")
        files = [p for p in folder.rglob("*") if p.is_file() and CACHE_FOLDER not in p.parts]
        return content_hash(files, folder, cache_dir(folder, root))

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        part = self._decoded(root, split)
        return part["x"], part["y"]

    def _decoded(self, root: Path, split: Split) -> dict[str, Any]:
        return cached(cache_dir(self._folder(root), root), self._stem(root), split,
                      lambda: {split: self._convert(root, split)})

    def forget(self, root: Path) -> bool:
        drop(cache_dir(self._folder(root), root), self._stem(root))
        return True

    def _stem(self, root: Path) -> str:
        return cache_key({**self.spec(), "root": None}, self.content_hash(root))

    def _open(self, root: Path, split: Split, *, download: bool = False) -> Any:
        import inspect

        cls = self._cls()
        params = inspect.signature(cls).parameters
        kwargs: dict[str, Any] = {"download": download} if "download" in params else {}
        if "train" in params:
            kwargs["train"] = split == "train"
        elif "split" in params:
            kwargs["split"] = split
        else:
            raise ValueError(f"torchvision.datasets.{self.name} has neither a train nor a split argument; "
                             "load it yourself with hpsearch.datasets.tensors(...)")
        try:
            return cls(str(_root(self.root, root)), **kwargs)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted..."
            if download:
                raise
            self._missing(root, str(err).splitlines()[0])

    def _missing(self, root: Path, why: str) -> None:
        raise DatasetMissing(f"{self.name}: not found under {self._folder(root)} ({why}); put "
                             f"{self.fetched_by} there, or pass --data-root DIR (or set HPSEARCH_DATA)")

    def _convert(self, root: Path, split: Split) -> dict[str, Any]:
        import torch

        ds = self._open(root, split)
        data = getattr(ds, "data", None)
        labels = getattr(ds, "targets", None)
        if labels is None:
            labels = getattr(ds, "labels", None)
        if isinstance(data, (np.ndarray, torch.Tensor)) and labels is not None and self.size is None:
            x = torch.as_tensor(np.asarray(data))
            if x.ndim == 3:
                x = x.unsqueeze(1)
            elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
                x = x.permute(0, 3, 1, 2)
            x = self._channels(x.to(torch.uint8).contiguous())
        else:
            x, labels = self._iterate(ds)
        y = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
        classes = list(getattr(ds, "classes", None) or [str(i) for i in range(int(y.max()) + 1)])
        return {"x": x, "y": y, "classes": [str(c) for c in classes]}

    def _channels(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        if self.channels is None or x.shape[1] == self.channels:
            return x
        if self.channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
            luma = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
            return (x.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        return x.expand(-1, 3, -1, -1).contiguous()

    def _iterate(self, ds: Any) -> tuple[torch.Tensor, list[int]]:
        import torch

        if self.size is None:
            raise DatasetError(f"torchvision.datasets.{self.name} yields images one at a time; "
                               "pass size=(H, W) to resize them once")
        h, w = self.size
        mode = "L" if self.channels == 1 else "RGB"
        xs, ys = [], []
        for img, target in ds:
            arr = np.asarray(img.convert(mode).resize((w, h)), dtype=np.uint8)
            xs.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            ys.append(int(target))
        return torch.from_numpy(np.stack(xs)), ys

