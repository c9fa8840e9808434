"""Anything else: a function of the user's that returns train and test arrays.

The study stores where the function lives (``module:qualname``), not the arrays: a search
worker and a retrain call it again, and the content hash of what it returns says whether
it still returns the data the search ran on.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpsearch.data._sources import DatasetInfo, Source, Split
from hpsearch.errors import DatasetError, StudyModuleError

if TYPE_CHECKING:
    import torch

DEFAULT_AUGMENTS = ("none", "pad_crop")  # safe for any images; pass augmentations= for more


@dataclass(frozen=True)
class TensorSource(Source):
    """Arrays from ``load()``; see :func:`hpsearch.data.datasets.tensors`."""

    ref: str  # "module:qualname" of the function
    name: str
    classes: tuple[str, ...] | None = None
    augmentations: tuple[str, ...] = DEFAULT_AUGMENTS
    load: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    kind: ClassVar[str] = "tensors"

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "name": self.name,
                "classes": list(self.classes) if self.classes is not None else None,
                "augmentations": list(self.augmentations)}

    @property
    def needs_module(self) -> str:
        """The module that must be imported before the function can be called."""
        return self.ref.split(":", 1)[0]

    @property
    def fetched_by(self) -> str:  # type: ignore[override]
        return f"what {self.ref}() returns"

    @property
    def label(self) -> str:
        return self.name

    @cached_property
    def info(self) -> DatasetInfo:
        x, y = self._arrays["train"]
        n = int(max(int(y.max()), int(self._arrays["test"][1].max()))) + 1
        classes = self.classes or tuple(str(i) for i in range(n))
        if len(classes) < n:
            raise DatasetError(f"{self.ref}() returned label {n - 1} but classes= names only {len(classes)}")
        return DatasetInfo(self.name, int(x.shape[1]), (int(x.shape[2]), int(x.shape[3])), tuple(classes),
                           tuple(self.augmentations))

    def check(self, root: Path) -> None:
        self.info  # noqa: B018 - calls the function and checks what it returned

    def content_hash(self, root: Path) -> str:
        h = hashlib.sha256()
        for split in ("train", "test"):
            for t in self._arrays[split]:
                h.update(f"{split}:{t.dtype}:{tuple(t.shape)}\0".encode())
                h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

    def decode(self, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        return self._arrays[split]

    def _function(self) -> Callable[[], Any]:
        if self.load is not None:
            return self.load
        module_name, _, qualname = self.ref.partition(":")
        module = sys.modules.get(module_name)
        if module is None:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                raise StudyModuleError(f"the data function {self.ref} is in a module that is not loaded; "
                                       "run from the study's folder or pass --studies-dir") from None
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if not callable(obj):
            raise StudyModuleError(f"{module_name} no longer defines the data function {qualname}; restore it")
        return obj

    @cached_property
    def _arrays(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = self._function()()
        if isinstance(out, dict) and set(out) >= {"train", "test"}:
            parts = {"train": out["train"], "test": out["test"]}
        elif isinstance(out, (tuple, list)) and len(out) == 4:
            parts = {"train": (out[0], out[1]), "test": (out[2], out[3])}
        else:
            raise DatasetError(f"{self.ref}() must return (x_train, y_train, x_test, y_test) or "
                               "{'train': (x, y), 'test': (x, y)}")
        arrays = {s: _as_tensors(self.ref, s, *p) for s, p in parts.items()}
        if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
            raise DatasetError(f"{self.ref}(): train images are {tuple(arrays['train'][0].shape[1:])} but test "
                               f"images {tuple(arrays['test'][0].shape[1:])}; both splits need one shape")
        return arrays


def _as_tensors(ref: str, split: str, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Images to ``N×C×H×W`` (uint8 kept, floats as float32), labels to int64."""
    import torch

    xt = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach().cpu()
    yt = torch.as_tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y.detach().cpu()
    if xt.ndim == 3:
        xt = xt.unsqueeze(1)
    elif xt.ndim == 4 and xt.shape[-1] in (1, 3) and xt.shape[1] not in (1, 3):
        xt = xt.permute(0, 3, 1, 2)  # N×H×W×C, as numpy and PIL hold images
    if xt.ndim != 4 or xt.shape[1] not in (1, 3):
        raise DatasetError(f"{ref}(): {split} images have shape {tuple(xt.shape)}; expected N×H×W, N×C×H×W "
                           "or N×H×W×C with 1 or 3 channels")
    if xt.dtype.is_floating_point:
        xt = xt.float()
    elif xt.dtype != torch.uint8:
        raise DatasetError(f"{ref}(): {split} images are {xt.dtype}; use uint8 (0–255) or float (0–1)")
    if yt.ndim != 1 or yt.dtype.is_floating_point or yt.dtype == torch.bool or len(yt) != len(xt):
        raise DatasetError(f"{ref}(): {split} labels must be {len(xt)} integers (one per image), "
                           f"got {yt.dtype} of shape {tuple(yt.shape)}")
    yt = yt.long()
    if len(yt) == 0 or int(yt.min()) < 0:
        raise DatasetError(f"{ref}(): {split} labels must be class indices 0..K-1 (and not empty)")
    return xt.contiguous(), yt
