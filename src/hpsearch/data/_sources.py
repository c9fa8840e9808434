"""Where the pixels come from: one small class per dataset, all returning uint8 tensors.

Every source reads one *split* at a time (``"train"`` or ``"test"``) so a search can load
the training split without the test files even being present. Sources that can be
downloaded keep torchvision's real download code; offline, a missing file becomes one
:class:`DatasetMissing` line naming the files and the folder they belong in.
"""

from __future__ import annotations

import pickle
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, final

import numpy as np

if TYPE_CHECKING:
    import torch

from hpsearch.data._gate import Look, admit
from hpsearch.errors import DatasetMissing

Split = Literal["train", "test"]


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset; what the model builder and the search space need."""

    name: str
    channels: int
    size: tuple[int, int]  # (height, width); an int means a square
    classes: tuple[str, ...]
    augmentations: tuple[str, ...]  # label-preserving augmentations that fit this data

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            object.__setattr__(self, "size", (self.size, self.size))
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image: what a model spec builds for."""
        return (self.channels, *self.size)


class Source:
    """Where one dataset's pixels come from. Subclasses implement :meth:`decode`.

    :meth:`read` is the only way in and is the same for every source: a ``"test"`` read goes
    through the gate (refused in search workers, counted everywhere else). The built-ins are
    stored by name; the others describe themselves with :meth:`spec`, which is what the study's
    settings keep.
    """

    cached: ClassVar[bool] = False  # decodes into the tensor cache (worth building before workers start)
    has_masks: ClassVar[bool] = False  # targets are per-pixel masks (N×H×W), not labels: a segmentation set
    fetched_by: str = ""  # how a user with internet gets the files (for the missing-files message)

    @property
    def info(self) -> DatasetInfo:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """A short name for tables and messages, known without reading any file."""
        return self.info.name

    def files(self, root: Path, split: Split) -> list[Path]:
        """The files this split is read from (used to say what is missing)."""
        return []

    def download(self, root: Path) -> None:
        return None

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as ``N×C×H×W`` (uint8, or float in [0, 1]) and labels as int64 ``N``."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """What the study stores to rebuild this source (JSON; ``kind`` names the class)."""
        raise NotImplementedError(f"{type(self).__name__} is stored by name")

    def check(self, root: Path) -> None:
        """Raise one clear error if the data is there but unusable (called before a search)."""
        return None

    def content_hash(self, root: Path) -> str | None:
        """A hash of the data's files, so a changed dataset is noticed; None if not tracked."""
        return None

    def forget(self, root: Path) -> bool:
        """Drop this source's decoded cache so the next read decodes the files again; False for a
        source that keeps no cache (it decodes on every read, so there is nothing to tamper with)."""
        return False

    @final
    def read(self, root: Path, split: Split, *, look: Look | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One split's images and labels; ``look`` records a test read before it happens."""
        if split == "test":
            admit(self.info.name, look)
        elif split != "train":
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return self.decode(root, split)


class Digits(Source):
    """scikit-learn's bundled 8×8 digits: no download, works offline.

    The set has no official test split, so we fix one: a stratified 25 % held out with
    seed 0. It never changes, so test scores are comparable across studies and versions.
    """

    info = DatasetInfo("digits", 1, (8, 8), tuple(str(i) for i in range(10)),
                       ("none", "pad_crop", "rotation"))
    test_fraction = 0.25

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        import torch
        from sklearn.datasets import load_digits

        from hpsearch.data._split import stratified_split

        d = load_digits()
        x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
        y = torch.from_numpy(d.target.astype(np.int64))
        train_idx, test_idx = stratified_split(y, self.test_fraction, seed=0)
        idx = train_idx if split == "train" else test_idx
        return x[idx], y[idx]

    fetched_by = "bundled with scikit-learn"


class IdxSource(Source):
    """MNIST-style raw IDX files in torchvision's layout: ``ROOT/<Name>/raw/<prefix>-…-ubyte``."""


    def __init__(self, tv_class_name: str, info: DatasetInfo) -> None:
        self.tv_class_name = tv_class_name
        self._info = info

    @property
    def info(self) -> DatasetInfo:
        return self._info

    def files(self, root: Path, split: Split) -> list[Path]:
        prefix = "train" if split == "train" else "t10k"
        raw = root / self.tv_class_name / "raw"
        return [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.datasets.mnist import read_image_file, read_label_file

        images, labels = self.files(root, split)
        return read_image_file(str(images)).unsqueeze(1).contiguous(), read_label_file(str(labels)).long()

    def download(self, root: Path) -> None:
        import torchvision.datasets

        getattr(torchvision.datasets, self.tv_class_name)(str(root), train=True, download=True)

    @property
    def fetched_by(self) -> str:  # type: ignore[override]
        return f"what torchvision.datasets.{self.tv_class_name}(ROOT, download=True) fetches"


class Cifar10(Source):
    """CIFAR-10 in its python on-disk format: ``ROOT/cifar-10-batches-py/{data,test}_batch*``.

    We read the pickled batches ourselves rather than through torchvision's class, which
    insists on md5-checking every file (so it cannot read a split on its own).
    """

    info = DatasetInfo(
        "cifar10", 3, (32, 32),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        ("none", "flip", "pad_crop", "flip_crop", "color_jitter"),
    )
    folder = "cifar-10-batches-py"

    def files(self, root: Path, split: Split) -> list[Path]:
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        return [root / self.folder / n for n in names]

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        xs, ys = [], []
        for path in self.files(root, split):
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch["labels"], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def download(self, root: Path) -> None:
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)

    fetched_by = "the extracted cifar-10-python.tar.gz that torchvision.datasets.CIFAR10(ROOT, download=True) fetches"


_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

SOURCES: dict[str, Source] = {
    "digits": Digits(),
    "mnist": IdxSource("MNIST", DatasetInfo("mnist", 1, (28, 28), tuple(str(i) for i in range(10)),
                                            ("none", "pad_crop", "rotation"))),
    "fashion_mnist": IdxSource("FashionMNIST", DatasetInfo(
        "fashion_mnist", 1, (28, 28), _FASHION, ("none", "flip", "pad_crop", "flip_crop", "rotation"))),
    "cifar10": Cifar10(),
}


def get_source(name: str | Source) -> Source:
    """A built-in source by name; a dataset object is its own source."""
    if isinstance(name, Source):
        return name
    try:
        return SOURCES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; built-in: {', '.join(SOURCES)}; for your own data use "
                         "hpsearch.data.datasets (image_folder, emnist, torchvision, tensors)") from None


def ensure_files(source: Source, root: Path, split: Split, *, download: bool = True) -> None:
    """Make sure ``split`` can be read, downloading once if allowed; else say exactly what to do."""
    missing = [p for p in source.files(root, split) if not p.exists()]
    if not missing:
        return
    reason = "download disabled"
    if download:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)
        try:
            source.download(root)
        except Exception as err:  # noqa: BLE001 - any network/IO failure means "offline"
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            reason = f"download failed: {lines[-1] if lines else type(err).__name__}"
        finally:
            socket.setdefaulttimeout(old)
        missing = [p for p in source.files(root, split) if not p.exists()]
        if not missing:
            return
    folder = missing[0].parent
    names = ", ".join(p.name for p in missing)
    raise DatasetMissing(
        f"{source.info.name}: missing {names} in {folder} ({reason}); copy the files there "
        f"({source.fetched_by}) or pass --data-root DIR (or set HPSEARCH_DATA) to a folder that has them"
    )
