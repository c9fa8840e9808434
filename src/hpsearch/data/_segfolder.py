"""A folder of images and their masks, for segmentation: ``ROOT/images/*`` + ``ROOT/masks/*``.

A mask has the image's file stem (any image format; PNG keeps the class indices exact) and
holds one class index per pixel; binary masks saved as 0/255 are read as 0/1. Images are
resized bilinearly, masks by nearest neighbour (an interpolated class index means nothing).
The test split is a fixed, seeded cut of the files, read through the same gate as every
other source. Decoded on every read (no tensor cache: segmentation folders are small).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpsearch.data._folder import IMAGE_SUFFIXES
from hpsearch.data._sources import DatasetInfo, Source, Split
from hpsearch.errors import DatasetError, DatasetMissing

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SegmentationFolder(Source):
    """See :func:`hpsearch.data.datasets.segmentation_folder`."""

    root: str  # absolute
    images: str = "images"
    masks: str = "masks"
    size: tuple[int, int] | None = None  # (H, W); None: the images' own (one) size
    channels: int = 3
    classes: tuple[str, ...] = ("background", "foreground")
    test_fraction: float = 0.2
    split_seed: int = 0
    name: str | None = None

    kind: ClassVar[str] = "segmentation_folder"
    has_masks: ClassVar[bool] = True
    fetched_by: ClassVar[str] = "your own images and masks"  # type: ignore[misc]

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.size is not None:
            size = (self.size, self.size) if isinstance(self.size, int) else tuple(int(v) for v in self.size)
            object.__setattr__(self, "size", size)
        object.__setattr__(self, "classes", tuple(self.classes))
        if len(self.classes) < 2:
            raise ValueError(f"classes must name at least 2 mask classes (background first), got {self.classes!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": self.root, "images": self.images, "masks": self.masks,
                "size": list(self.size) if self.size else None, "channels": self.channels,
                "classes": list(self.classes), "test_fraction": self.test_fraction,
                "split_seed": self.split_seed, "name": self.name}

    @property
    def label(self) -> str:
        return self.name or Path(self.root).name

    @cached_property
    def info(self) -> DatasetInfo:
        size = self.size
        if size is None:
            from PIL import Image

            with Image.open(self._pairs[0][0]) as im:
                size = (im.height, im.width)
        return DatasetInfo(self.label, self.channels, size, self.classes, ("none",))

    def check(self, root: Path) -> None:
        self._decoded  # noqa: B018 - reads every pair once: one clear line for the first bad file

    def content_hash(self, root: Path) -> str:
        h = hashlib.sha256()
        for image, mask in self._pairs:
            for p in (image, mask):
                h.update(p.name.encode() + b"\0" + p.read_bytes())
        return h.hexdigest()

    @cached_property
    def _pairs(self) -> list[tuple[Path, Path]]:
        base = Path(self.root)
        img_dir, mask_dir = base / self.images, base / self.masks
        for d in (img_dir, mask_dir):
            if not d.is_dir():
                raise DatasetMissing(f"segmentation folder {base}: no {d.name}/ folder ({d}); put the images in "
                                     f"{img_dir} and their masks, same file names, in {mask_dir}")
        masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(images) < 2:
            raise DatasetError(f"{img_dir}: needs at least 2 images, found {len(images)}")
        lacking = [p.name for p in images if p.stem not in masks]
        if lacking:
            raise DatasetError(f"{img_dir / lacking[0]} has no mask in {mask_dir} (a file named {Path(lacking[0]).stem}.png); "
                               f"{len(lacking)} image(s) lack one")
        return [(p, masks[p.stem]) for p in images]

    @cached_property
    def _decoded(self) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image

        xs, ys = [], []
        first = None
        for image, mask in self._pairs:
            try:
                with Image.open(image) as im, Image.open(mask) as mk:
                    im = im.convert("RGB" if self.channels == 3 else "L")
                    mk = mk.convert("L")
                    if self.size is not None:
                        im = im.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
                        mk = mk.resize((self.size[1], self.size[0]), Image.Resampling.NEAREST)
                    a, m = np.asarray(im), np.asarray(mk)
            except OSError as err:
                raise DatasetError(f"cannot read {image} or its mask {mask}: {err}") from None
            if a.shape[:2] != m.shape:
                raise DatasetError(f"{mask} is {m.shape[1]}×{m.shape[0]} but its image {image.name} is "
                                   f"{a.shape[1]}×{a.shape[0]}; masks must match their images")
            first = first or a.shape[:2]
            if a.shape[:2] != first:
                raise DatasetError(f"{image} is {a.shape[1]}×{a.shape[0]}, others {first[1]}×{first[0]}; "
                                   "pass size=(H, W) to resize them all")
            if len(self.classes) == 2 and set(np.unique(m).tolist()) <= {0, 255}:
                m = (m > 0).astype(np.uint8)  # a binary mask saved as black and white
            if int(m.max()) >= len(self.classes):
                raise DatasetError(f"{mask} holds class {int(m.max())} but classes= names {len(self.classes)} "
                                   f"({', '.join(self.classes)}); pass classes=(...) naming every index")
            xs.append(a if a.ndim == 3 else a[..., None])
            ys.append(m.astype(np.uint8))
        return np.stack(xs).transpose(0, 3, 1, 2).copy(), np.stack(ys)

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        x, y = self._decoded
        g = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(x), generator=g)
        n_test = max(1, int(round(self.test_fraction * len(x))))
        idx = torch.sort(order[:n_test] if split == "test" else order[n_test:]).values.numpy()
        return torch.from_numpy(x[idx].copy()), torch.from_numpy(y[idx].copy())
