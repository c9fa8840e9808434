"""Load a dataset once into normalised, device-resident tensors split into train/val/test.

The search only ever calls :func:`load_search_data`, which reads the official *training*
split and carves a stratified validation set out of it. The official test split is read by
:func:`load_test_data` alone, and a process that called :func:`forbid_test_split` (every
search worker does) gets :class:`TestSplitForbidden` instead: tuning on the test set is
impossible by construction, not by convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hpsearch.data._sources import ensure_files, get_source
from hpsearch.data._spec import DataSpec
from hpsearch.data._split import stratified_split, stratified_subset
from hpsearch.errors import TestSplitForbidden

_test_split_forbidden = False


def forbid_test_split() -> None:
    """From now on this process cannot load the test split (one-way: there is no undo)."""
    global _test_split_forbidden
    _test_split_forbidden = True


@dataclass(frozen=True)
class Tensors:
    x: torch.Tensor  # float32, normalised, N×C×H×W
    y: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class SearchData:
    """The training split cut into train/val, normalised with the train part's statistics."""

    info: DatasetInfo
    train: Tensors
    val: Tensors
    mean: torch.Tensor  # per channel, of the train part (used for test data too)
    std: torch.Tensor


def check_available(spec: DataSpec, root: Path, *, split: str = "train", download: bool = True) -> None:
    """Fail fast, before any study is created, when the files are not there."""
    ensure_files(get_source(spec.dataset), root, split, download=download)  # type: ignore[arg-type]


def load_search_data(spec: DataSpec, root: Path, device: torch.device | str = "cpu") -> SearchData:
    source = get_source(spec.dataset)
    ensure_files(source, root, "train")
    x, y = source.read(root, "train")
    train_idx, val_idx = stratified_split(y, spec.val_fraction, spec.split_seed)
    if spec.train_subset is not None:
        train_idx = train_idx[stratified_subset(y[train_idx], spec.train_subset, spec.split_seed)]
    xt = x[train_idx].float().div_(255)
    mean = xt.mean(dim=(0, 2, 3))
    std = xt.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return SearchData(
        info=source.info,
        train=_resident(xt, y[train_idx], mean, std, device, scaled=True),
        val=_resident(x[val_idx], y[val_idx], mean, std, device),
        mean=mean,
        std=std,
    )


def load_test_data(spec: DataSpec, root: Path, mean: torch.Tensor, std: torch.Tensor,
                   device: torch.device | str = "cpu") -> Tensors:
    """The official test split, normalised with the search's training statistics."""
    if _test_split_forbidden:
        raise TestSplitForbidden(
            f"{spec.dataset}: the test split cannot be loaded during a search; "
            "evaluate it once with `hpsearch best STUDY --retrain`"
        )
    source = get_source(spec.dataset)
    ensure_files(source, root, "test")
    x, y = source.read(root, "test")
    return _resident(x, y, mean, std, device)


def _resident(x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
              device: torch.device | str, *, scaled: bool = False) -> Tensors:
    xf = x if scaled else x.float().div(255)
    xf = (xf - mean[None, :, None, None]) / std[None, :, None, None]
    return Tensors(xf.contiguous().to(device), y.to(device))
