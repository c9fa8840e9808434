"""``shapes``: a segmentation set generated on the fly — shapes on noisy backgrounds, with masks.

So a U-Net study runs with no download: every image is drawn from the seed alone (numpy's
PCG64, which numpy keeps stable across versions), so a worker, a retrain and a report on
another machine regenerate exactly the search's pixels. Each image has a smooth random
colour gradient plus Gaussian noise as background and one to three filled circles,
rectangles or triangles in random colours; its mask marks the shapes (class 1) against the
background (class 0). The last fifth of the ``n`` images is the test split, read through the
same gate as every other source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpsearch.data._sources import DatasetInfo, Source, Split

if TYPE_CHECKING:
    import torch

TEST_FRACTION = 0.2
MASK_CLASSES = ("background", "shape")


def draw(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (N×3×S×S uint8) and masks (N×S×S uint8, 1 = shape), from ``seed`` alone."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / max(1, size - 1)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy + 1.5) / 3  # a gradient at a random angle, 0..1
        img = a[:, None, None] * (1 - t) + b[:, None, None] * t
        mask = np.zeros((size, size), dtype=bool)
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(0, 3))
            r = rng.uniform(0.1, 0.25) * size
            cx, cy = rng.uniform(r, size - r, 2) / max(1, size - 1)
            rn = r / max(1, size - 1)
            if kind == 0:  # circle
                shape = (xx - cx) ** 2 + (yy - cy) ** 2 <= rn**2
            elif kind == 1:  # rectangle
                w, h = rn * rng.uniform(0.6, 1.0), rn * rng.uniform(0.6, 1.0)
                shape = (np.abs(xx - cx) <= w) & (np.abs(yy - cy) <= h)
            else:  # triangle pointing up: below the two sides, above the base
                shape = (yy <= cy + rn) & (yy >= cy - rn + 2 * np.abs(xx - cx))
            colour = rng.uniform(0, 255, 3)
            img = np.where(shape[None], colour[:, None, None], img)
            mask |= shape
        img = img + rng.normal(0, 20, img.shape)
        images[i] = np.clip(img, 0, 255).round().astype(np.uint8)
        masks[i] = mask
    return images, masks


@dataclass(frozen=True)
class Shapes(Source):
    """See :func:`hpsearch.data.datasets.shapes`."""

    n: int = 2000
    size: int = 64
    seed: int = 0

    kind: ClassVar[str] = "shapes"
    has_masks: ClassVar[bool] = True
    fetched_by: ClassVar[str] = "generated from the seed, nothing to fetch"  # type: ignore[misc]

    def __post_init__(self) -> None:
        if self.n < 10:
            raise ValueError(f"shapes(n=...) must be >= 10 (a fifth is the test split), got {self.n}")
        if self.size < 8:
            raise ValueError(f"shapes(size=...) must be >= 8 pixels, got {self.size}")

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "n": self.n, "size": self.size, "seed": self.seed}

    @property
    def label(self) -> str:
        return f"shapes-{self.n}x{self.size}"

    @cached_property
    def info(self) -> DatasetInfo:
        return DatasetInfo("shapes", 3, (self.size, self.size), MASK_CLASSES, ("none",))

    def content_hash(self, root: Path) -> str:
        """Of the pixels themselves: a numpy that drew them differently would be noticed."""
        x, y = self._all
        return hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()

    @cached_property
    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        return draw(self.n, self.size, self.seed)

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        x, y = self._all
        n_test = max(1, int(round(TEST_FRACTION * self.n)))
        part = slice(0, self.n - n_test) if split == "train" else slice(self.n - n_test, self.n)
        return torch.from_numpy(x[part].copy()), torch.from_numpy(y[part].copy())
