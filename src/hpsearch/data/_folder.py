"""A folder of one's own images, in torchvision's ImageFolder layout, decoded once.

``ROOT/train/<class>/*.png|jpg`` plus ``ROOT/test/<class>/...``, or one ``ROOT/<class>/...``
cut into train and test by a fixed, stratified, seeded fraction. Every image is decoded,
converted to the study's channels and resized to its size once; the uint8 result is the
tensor cache (see ``_cache``), so workers and retrains start from one memory-mapped file.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpsearch.data._cache import cache_dir, cache_key, cached, drop, hash_files
from hpsearch.data._sources import DatasetInfo, Source, Split
from hpsearch.errors import DatasetError, DatasetMissing

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
# A 10 KB PNG can declare 81 megapixels and decode to ~1 GB in every worker; a photo from a phone is
# 12-50. Pillow's own guard (MAX_IMAGE_PIXELS, 89 M) only warns below 179 M.
MAX_PIXELS = 64_000_000
GRAY_AUGMENTS = ("none", "flip", "pad_crop", "flip_crop", "rotation")
RGB_AUGMENTS = ("none", "flip", "pad_crop", "flip_crop", "rotation", "color_jitter")


@dataclass(frozen=True)
class ImageFolder(Source):
    """Images in class folders; see :func:`hpsearch.data.datasets.image_folder`."""

    root: str  # absolute
    size: tuple[int, int] | None = None  # (H, W); None: keep the images' own (one) size
    channels: int = 3
    test: str | None = "test"  # the test split's folder; None with test_fraction
    test_fraction: float | None = None  # cut the test split from one folder instead
    split_seed: int = 0
    train: str = "train"
    name: str | None = None

    kind: ClassVar[str] = "image_folder"
    cached: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.size is not None:
            size = (self.size, self.size) if isinstance(self.size, int) else tuple(int(v) for v in self.size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"size must be (height, width) in pixels, got {self.size!r}")
            object.__setattr__(self, "size", size)
        if self.test_fraction is not None:
            if not 0.0 < self.test_fraction < 1.0:
                raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
            object.__setattr__(self, "test", None)
        elif not self.test:
            raise ValueError("pass test='FOLDER' (a test folder beside train/) or test_fraction=0.2")

    # -- what the study stores -------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": self.root, "size": list(self.size) if self.size else None,
                "channels": self.channels, "test": self.test, "test_fraction": self.test_fraction,
                "split_seed": self.split_seed, "train": self.train, "name": self.name}

    @property
    def label(self) -> str:
        return self.name or Path(self.root).name

    @cached_property
    def info(self) -> DatasetInfo:
        classes = self._layout["classes"]
        size = self.size or self._first_size()
        return DatasetInfo(self.name or Path(self.root).name, self.channels, size, tuple(classes),
                           RGB_AUGMENTS if self.channels == 3 else GRAY_AUGMENTS)

    @property
    def fetched_by(self) -> str:  # type: ignore[override]
        return "your own images"

    # -- files -----------------------------------------------------------------------------

    def files(self, root: Path, split: Split) -> list[Path]:
        layout = self._layout
        if self.test_fraction is not None:
            return [p for p, _ in layout["one"]]
        return [p for p, _ in layout[split]]

    def check(self, root: Path) -> None:
        self.info  # noqa: B018 - lists every folder and raises the first problem

    def content_hash(self, root: Path) -> str:
        """The files' digest, once the splits are known to share no image (:func:`refuse_duplicates`)."""
        parts: dict[str, list[Path]] = {part: [p for p, _ in self._layout[part]]
                                        for part in ("one", "train", "test") if part in self._layout}
        hashed = hash_files([p for paths in parts.values() for p in paths], Path(self.root), self._cache(root))
        refuse_duplicates(parts, hashed.files, Path(self.root))
        return hashed.digest

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        part = cached(self._cache(root), self._stem(root), split, lambda: self._decode_split(split))
        return part["x"], part["y"]  # type: ignore[return-value]

    def forget(self, root: Path) -> bool:
        drop(self._cache(root), self._stem(root))
        return True

    def _stem(self, root: Path) -> str:
        return cache_key({**self.spec(), "size": list(self.info.size), "root": None}, self.content_hash(root))

    def _cache(self, root: Path) -> Path:
        return cache_dir(Path(self.root), root)

    @cached_property
    def _layout(self) -> dict[str, Any]:
        """``{split: [(path, class index)], "classes": [...]}``, every listing problem raised."""
        base = Path(self.root)
        if not base.is_dir():
            raise DatasetMissing(f"image folder {base} does not exist; make it hold one folder per class "
                                 f"({self._expected()}), or fix the path in the study module")
        if self.test_fraction is not None:
            classes = _class_folders(base, base)
            return {"classes": classes, "one": _images(base, classes)}
        train, test = base / self.train, base / str(self.test)
        for folder, what in ((train, "training"), (test, "test")):
            if not folder.is_dir():
                raise DatasetMissing(f"{base}: no {folder.name}/ folder for the {what} images; expected "
                                     f"{self._expected()}, or pass test_fraction=0.2 to cut the test split "
                                     "from one folder of class folders")
        classes = _class_folders(train, base)
        extra = sorted(set(_class_folders(test, base, need_two=False)) - set(classes))
        if extra:
            raise DatasetError(f"{test}: class folder(s) {', '.join(extra)} have no counterpart in {train}; "
                               "a model cannot learn a class it never sees — add training images or remove them")
        return {"classes": classes, "train": _images(train, classes),
                "test": _images(test, [c for c in classes if (test / c).is_dir()], index=classes)}

    def _expected(self) -> str:
        if self.test_fraction is not None:
            return "ROOT/<class>/*.png|jpg"
        return f"ROOT/{self.train}/<class>/*.png|jpg and ROOT/{self.test}/<class>/*.png|jpg"

    def _first_size(self) -> tuple[int, int]:
        from PIL import Image

        path = self.files(Path(self.root), "train")[0]
        with _opened(path, Image) as im:
            return (im.height, im.width)

    # -- decoding --------------------------------------------------------------------------

    def _decode_split(self, split: Split) -> dict[str, Any]:
        """Every split this layout decodes at once: both when the test split is a cut of one folder."""
        import torch

        from hpsearch.data._split import stratified_split

        classes = list(self.info.classes)
        pairs = self._layout["one"] if self.test_fraction is not None else self._layout[split]
        x = self._decode_all([p for p, _ in pairs])
        y = torch.tensor([c for _, c in pairs], dtype=torch.int64)
        if self.test_fraction is None:
            return {split: {"x": x, "y": y, "classes": classes}}
        train_idx, test_idx = stratified_split(y, self.test_fraction, self.split_seed)
        return {s: {"x": x[idx].clone(), "y": y[idx].clone(), "classes": classes}
                for s, idx in (("train", train_idx), ("test", test_idx))}

    def _decode_all(self, paths: list[Path]) -> torch.Tensor:
        import torch
        from PIL import Image

        h, w = self.info.size
        mode = "RGB" if self.channels == 3 else "L"
        resize = self.size is not None

        def one(path: Path) -> np.ndarray:
            with _opened(path, Image) as im:
                if resize and im.format == "JPEG":
                    im.draft(mode, (w, h))  # let libjpeg decode at a reduced scale (never below w × h)
                im = im.convert(mode)
                if im.size != (w, h):
                    if not resize:
                        raise DatasetError(f"{path} is {im.height}×{im.width} but the first image is {h}×{w}; "
                                           "pass size=(H, W) to resize every image once")
                    im = im.resize((w, h), Image.Resampling.BILINEAR)  # antialiased when shrinking
                arr = np.asarray(im, dtype=np.uint8)
            return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

        # Pillow releases the GIL while decoding and resizing, so threads use every core.
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            arrays = list(pool.map(one, paths))
        return torch.from_numpy(np.stack(arrays))


class _opened:
    """``Image.open`` that names the file when it is not a readable image."""

    def __init__(self, path: Path, image_module: Any) -> None:
        self.path, self.image = path, image_module

    def __enter__(self) -> Any:
        try:
            self.im = self.image.open(self.path)  # the header only: the size is known before decoding
            w, h = self.im.size
            if w * h > MAX_PIXELS:
                self.im.close()
                raise DatasetError(f"{self.path} is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels; decoded it would "
                                   f"take ~{w * h * 4 / 2**30:.1f} GiB): images above {MAX_PIXELS // 10**6} megapixels "
                                   "are refused — shrink it, or remove it if you did not put it there")
            self.im.load()
        except DatasetError:
            raise
        except Exception as err:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError...
            raise DatasetError(f"{self.path}: not a readable image ({type(err).__name__}: {err}); "
                               "remove or replace the file") from None
        return self.im

    def __exit__(self, *exc: object) -> None:
        self.im.close()


def _class_folders(folder: Path, base: Path, *, need_two: bool = True) -> list[str]:
    names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if need_two and len(names) < 2:
        found = f"only {names[0]!r}" if names else "none"
        raise DatasetError(f"{folder}: a classifier needs at least 2 class folders, found {found}; "
                           "put each class's images in its own sub-folder")
    return names


def _images(folder: Path, classes: list[str], index: list[str] | None = None) -> list[tuple[Path, int]]:
    """Every image under each class folder (recursively, links followed, hidden entries skipped),
    sorted. ``os.walk`` on strings: pathlib's ``rglob`` took 1.5 s for 10k files.

    Each real folder is walked once and each real file listed once (by device and inode): a link
    back up the tree (``a/loop -> ..``) once turned 10 images into 410 and carried the test
    images into training. A file reached from two splits is caught by :func:`refuse_duplicates`.
    """
    index = index or classes
    out: list[tuple[Path, int]] = []
    seen: set[tuple[int, int]] = set()  # real folders and files of this split, across its classes

    def first_time(path: str) -> bool:
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return False
        seen.add(key)
        return True

    tops = [name for name in classes if first_time(str(folder / name))]  # a link into another class stops there
    for name in tops:
        found: list[str] = []
        for here, dirs, files in os.walk(str(folder / name), followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and first_time(os.path.join(here, d)))
            found += [path for f in sorted(files)
                      if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
                      and first_time(path := os.path.join(here, f))]
        if not found:
            raise DatasetError(f"{folder / name}: class folder with no images "
                               f"({', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder")
        c = index.index(name)
        out += [(Path(f), c) for f in sorted(found)]
    return out


def refuse_duplicates(parts: dict[str, list[Path]], digests: dict[str, str], base: Path) -> None:
    """Refuse, in one line naming the files, a dataset that holds one image twice where the two
    copies can land on both sides of a cut: in the training and the test split (the test score
    would be partly a training score), or twice in the images the validation split is drawn from
    (it is a seeded random cut of them: the search would be scored on images it trained on).

    ``parts``: the listed files by split (``train``, ``test``, or ``one`` for a single folder that
    is cut into train and test); ``digests``: each file's SHA-256 by name relative to ``base``.
    """
    prefix = len(str(base).rstrip(os.sep)) + 1
    where: dict[str, list[tuple[str, str]]] = {}  # digest → (split, relative name) of every copy
    for part, paths in parts.items():
        for p in paths:
            rel = str(p)[prefix:].replace(os.sep, "/")
            where.setdefault(digests[rel], []).append((part, rel))
    twice = sorted(sorted(copies) for copies in where.values() if len(copies) > 1)
    if not twice:
        return
    shown = "; ".join(" = ".join(rel for _, rel in copies) for copies in twice[:3])
    more = f" (and {len(twice) - 3} more)" if len(twice) > 3 else ""
    into_test = any(len({part for part, _ in copies}) > 1 or copies[0][0] == "one" for copies in twice)
    leak = ("the test score would be partly a score on training images" if into_test else
            "the validation split, a random cut of the training images, would score the search on images it trained on")
    raise DatasetError(f"{base}: {len(twice)} image(s) stored more than once with the same content: {shown}{more}; "
                       f"{leak} — delete all but one copy of each (a link counts as a copy)")
