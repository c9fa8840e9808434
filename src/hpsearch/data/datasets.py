"""Dataset objects for ``Study(dataset=...)``: your own images, EMNIST, torchvision sets, arrays,
and for segmentation ``shapes`` (generated, offline) and ``segmentation_folder``.

A built-in name (``"digits"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``) still works;
these cover the rest::

    from hpsearch import Study
    from hpsearch.data import datasets

    Study(dataset=datasets.image_folder("~/data/inat10", size=(64, 64)), space=...)
    Study(dataset=datasets.emnist("balanced"), space=...)
    Study(dataset=datasets.torchvision("KMNIST"), space=...)
    Study(dataset=datasets.tensors(my_loader, classes=("cat", "dog")), space=...)

The study stores the object's spec and a hash of its files, so ``best``, ``report`` and
workers that join later rebuild exactly the search's data, and a changed folder is refused
(``--allow-data-change`` to go on). Decoding and resizing happen once: the uint8 result is
cached beside the data (``.hpsearch-cache/``) and memory-mapped by every worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hpsearch.data._folder import ImageFolder
from hpsearch.data._segfolder import SegmentationFolder
from hpsearch.data._shapes import Shapes
from hpsearch.data._sources import Source
from hpsearch.data._tensors import DEFAULT_AUGMENTS, TensorSource
from hpsearch.data._torchvision import EMNIST, TorchvisionSet

__all__ = ["EMNIST", "ImageFolder", "SegmentationFolder", "Shapes", "Source", "TensorSource", "TorchvisionSet",
           "emnist", "from_spec", "image_folder", "segmentation_folder", "shapes", "tensors", "torchvision"]


def image_folder(root: str | os.PathLike[str], size: int | tuple[int, int] | None = None, channels: int = 3, *,
                 test: str = "test", test_fraction: float | None = None, split_seed: int = 0,
                 train: str = "train", name: str | None = None) -> ImageFolder:
    """Your own images in class folders (torchvision's ImageFolder layout).

    ``ROOT/train/<class>/*.png|jpg`` and ``ROOT/test/<class>/...``; or, with ``test_fraction``,
    one ``ROOT/<class>/...`` whose test split is a fixed stratified cut (``split_seed``).
    ``size=(H, W)`` resizes every image once (required when their sizes differ); ``channels``
    is 3 (RGB) or 1 (grayscale). Class names are the folder names, in sorted order. A relative
    ``root`` is taken from the current folder and stored absolute.
    """
    return ImageFolder(str(Path(root).expanduser().resolve()), size, channels, test, test_fraction,  # type: ignore[arg-type]
                       split_seed, train, name)


def emnist(split: str = "balanced", root: str | os.PathLike[str] | None = None) -> EMNIST:
    """EMNIST (``balanced``: 47 classes; ``byclass``, ``bymerge``, ``letters``, ``digits``, ``mnist``)
    from torchvision's layout under ``root`` (default: ``--data-root``), upright."""
    return EMNIST(split, str(Path(root).expanduser().resolve()) if root is not None else None)


def torchvision(name: str, root: str | os.PathLike[str] | None = None, *, size: int | tuple[int, int] | None = None,
                channels: int | None = None) -> TorchvisionSet:
    """A torchvision classification dataset by class name (``"KMNIST"``, ``"CIFAR100"``, ``"SVHN"``...),
    read from its usual folder under ``root`` (default: ``--data-root``)."""
    return TorchvisionSet(name, str(Path(root).expanduser().resolve()) if root is not None else None,
                          size, channels)  # type: ignore[arg-type]


def tensors(load: Callable[[], Any], *, name: str | None = None, classes: Sequence[str] | None = None,
            augmentations: Sequence[str] = DEFAULT_AUGMENTS) -> TensorSource:
    """Arrays from ``load()``: ``(x_train, y_train, x_test, y_test)`` or ``{"train": (x, y), "test": (x, y)}``.

    Images are uint8 (0–255) or float (0–1), ``N×H×W``, ``N×C×H×W`` or ``N×H×W×C``; labels are
    integers 0..K-1. ``load`` must be a module-level function (the study stores its name and
    workers call it again); ``augmentations`` lists the ones that keep your labels true.
    """
    qualname = getattr(load, "__qualname__", "")
    module = getattr(load, "__module__", None)
    if not callable(load) or not module or "<" in qualname:
        raise ValueError("tensors(load): load must be a function defined at the top level of a module "
                         "(not a lambda or a nested function), so workers and retrains can find it again")
    return TensorSource(f"{module}:{qualname}", name or qualname, tuple(classes) if classes else None,
                        tuple(augmentations), load)


def shapes(n: int = 2000, size: int = 64, seed: int = 0) -> Shapes:
    """A segmentation set drawn on the fly, offline: ``n`` RGB ``size``×``size`` images of shapes on
    noisy backgrounds with their masks (background 0, shape 1), the same for the same seed
    everywhere; the last fifth is the (sealed) test split. For ``tasks.segment()`` (and
    ``tasks.reconstruct()``)."""
    return Shapes(n, size, seed)


def segmentation_folder(root: str | os.PathLike[str], images: str = "images", masks: str = "masks", *,
                        size: int | tuple[int, int] | None = None, channels: int = 3,
                        classes: Sequence[str] = ("background", "foreground"), test_fraction: float = 0.2,
                        split_seed: int = 0, name: str | None = None) -> SegmentationFolder:
    """Your own images and masks: ``ROOT/images/x.jpg`` with ``ROOT/masks/x.png`` (same stem), each
    mask pixel a class index (0/255 black-and-white masks read as 0/1). ``classes`` names the
    indices, background first; the test split is a fixed, seeded ``test_fraction`` of the pairs."""
    return SegmentationFolder(str(Path(root).expanduser().resolve()), images, masks,
                              size, channels, tuple(classes), test_fraction, split_seed, name)  # type: ignore[arg-type]


_KINDS: dict[str, Callable[[dict[str, Any]], Source]] = {
    "shapes": lambda d: Shapes(int(d["n"]), int(d["size"]), int(d["seed"])),
    "segmentation_folder": lambda d: SegmentationFolder(
        d["root"], d["images"], d["masks"], tuple(d["size"]) if d.get("size") else None,
        d["channels"], tuple(d["classes"]), d["test_fraction"], d["split_seed"], d.get("name")),
    "image_folder": lambda d: ImageFolder(d["root"], tuple(d["size"]) if d.get("size") else None,
                                          d["channels"], d.get("test"), d.get("test_fraction"),
                                          d.get("split_seed", 0), d.get("train", "train"), d.get("name")),
    "emnist": lambda d: EMNIST(d["split"], d.get("root")),
    "torchvision": lambda d: TorchvisionSet(d["name"], d.get("root"),
                                            tuple(d["size"]) if d.get("size") else None,
                                            d.get("channels")),
    "tensors": lambda d: TensorSource(d["ref"], d["name"], tuple(d["classes"]) if d.get("classes") else None,
                                      tuple(d.get("augmentations") or DEFAULT_AUGMENTS)),
}


def from_spec(spec: dict[str, Any]) -> Source:
    """Rebuild a dataset object from what a study stored (``Source.spec()``)."""
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"stored dataset kind {kind!r} is not known to this hpsearch "
                         f"(known: {', '.join(_KINDS)}); upgrade hpsearch to read this study")
    return _KINDS[kind](spec)
