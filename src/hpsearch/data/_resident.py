"""The data a trial trains on: resident tensors, kept as stored (uint8) and normalised per batch.

The search only ever calls :func:`load_search_data`, which reads the official *training*
split and carves a stratified validation set out of it. The official test split is read by
:func:`load_test_data` alone, through the gate every source's test read passes
(``_gate``): refused in a search worker, and counted as a look everywhere else.

Images stay uint8 on the device (a quarter of float32: 10k RGB 224×224 images are 1.5 GB,
50k 64×64 ones 600 MB) and :meth:`Tensors.batch` turns the rows a step needs into
normalised float32 — the same arithmetic, in the same order, as normalising everything up
front, so the numbers do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hpsearch.data._cache import seal_of
from hpsearch.data._gate import Look, seal
from hpsearch.data._sources import DatasetInfo, ensure_files, get_source
from hpsearch.data._spec import DataSpec
from hpsearch.data._split import stratified_split, stratified_subset
from hpsearch.errors import DatasetError

forbid_test_split = seal  # the name 0.1 used


@dataclass(frozen=True)
class Tensors:
    """Images as stored (uint8 0–255, or float 0–1) and their targets, plus the normalisation."""

    x: torch.Tensor  # N×C×H×W, uint8 or float32
    y: torch.Tensor  # labels (int64, N), or masks of a segmentation set (uint8 class indices, N×H×W)
    mean: torch.Tensor  # per channel, in 0–1 units, on x's device
    std: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def batch(self, rows: torch.Tensor | slice) -> torch.Tensor:
        """Normalised float32 images for ``rows`` (an index tensor or a slice)."""
        xb = self.x[rows].float()
        if self.x.dtype == torch.uint8:
            xb = xb.div_(255)
        return (xb - self.mean[None, :, None, None]) / self.std[None, :, None, None]

    def pixels(self, rows: slice) -> torch.Tensor:
        """uint8 images for ``rows`` on the CPU (what reports show)."""
        x = self.x[rows].cpu()
        return x if x.dtype == torch.uint8 else x.clamp(0, 1).mul(255).round().to(torch.uint8)


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


def prepare(spec: DataSpec, root: Path) -> str | None:
    """Everything a search needs before its first worker: the files there (downloaded once if
    allowed), usable (each listing problem is one clear error), the training split decoded into
    the cache; returns the files' content hash for the study's settings (None: not tracked)."""
    source = get_source(spec.dataset)
    ensure_files(source, root, "train")
    source.check(root)
    digest = source.content_hash(root)
    if source.cached:
        source.read(root, "train")  # builds the cache once, here, not in every worker at once
    return digest


def read_checked(spec: DataSpec, root: Path, recorded: str | None = None,
                 say: Callable[[str], None] | None = None,
                 files_hash: str | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The training split and its digest (:func:`seal_of`), checked against ``recorded``, the one the
    study recorded when it was created (None: not checked, as for studies made before it was recorded).

    A decoded cache that does not match is never trained on: it is dropped and the files decoded
    again — the files hashed again too, no memo believed — with a warning. If the fresh decode
    still differs and the files' content equals ``files_hash`` (the study's), this machine decodes the
    same files differently from the one that created the study (another Pillow or libjpeg): that is
    said, and the fresh tensors are used. Files that differ from the study's are refused.
    """
    source = get_source(spec.dataset)
    ensure_files(source, root, "train")
    x, y = source.read(root, "train")
    now = seal_of(x, y)
    if recorded is None or now == recorded or not source.forget(root):
        return x, y, now
    tell = say or (lambda _m: None)
    tell(f"warning: {source.label}: the decoded tensor cache does not match what the study recorded (altered?); "
         "dropped it and decoding the files again")
    x, y = source.read(root, "train")
    now = seal_of(x, y)
    if now != recorded:
        content = source.content_hash(root)  # hashed from the files: drop() removed the memos
        if files_hash is not None and content is not None and content != files_hash:
            raise DatasetError(f"{source.label}: the data's files changed since the study was created (content "
                               f"{files_hash[:12]} then, {content[:12]} now; a hash memo in the cache said otherwise); "
                               "restore them, or pass --name NEW_NAME for a new study")
        tell(f"warning: {source.label}: the files decode differently here than where the study was created "
             "(another Pillow or libjpeg?); using this machine's decode")
    return x, y, now


def load_search_data(spec: DataSpec, root: Path, device: torch.device | str = "cpu", *,
                     recorded: str | None = None, say: Callable[[str], None] | None = None,
                     files_hash: str | None = None) -> SearchData:
    """The training split (checked against the digest the study ``recorded``: :func:`read_checked`),
    cut into train and validation and normalised, resident on ``device``."""
    x, y, _ = read_checked(spec, root, recorded, say, files_hash)
    strata = _strata(y)
    train_idx, val_idx = stratified_split(strata, spec.val_fraction, spec.split_seed)
    if spec.train_subset is not None:
        train_idx = train_idx[stratified_subset(strata[train_idx], spec.train_subset, spec.split_seed)]
    xt = x[train_idx]
    mean, std = _channel_stats(xt)
    dev = torch.device(device)
    m, s = mean.to(dev), std.to(dev)
    return SearchData(
        info=get_source(spec.dataset).info,
        train=Tensors(xt.contiguous().to(dev), y[train_idx].to(dev), m, s),
        val=Tensors(x[val_idx].contiguous().to(dev), y[val_idx].to(dev), m, s),
        mean=mean,
        std=std,
    )


def _strata(y: torch.Tensor) -> torch.Tensor:
    """What the validation split is stratified by: the labels, or for masks (N×H×W) the highest
    class each image shows (images with and without a foreground in both parts)."""
    return y if y.ndim == 1 else y.flatten(1).amax(1).long()


def refit_data(data: SearchData) -> SearchData:
    """Train + validation as one training set, with no validation set left (``--refit``).

    The normalisation stays the search's (the train part's statistics), so a refit model sees
    inputs scaled exactly as the searched one did, and the test split is scaled the same way.
    """
    t, v = data.train, data.val
    merged = Tensors(torch.cat([t.x, v.x]), torch.cat([t.y, v.y]), t.mean, t.std)
    return SearchData(data.info, merged, Tensors(v.x[:0], v.y[:0], v.mean, v.std), data.mean, data.std)


def load_test_data(spec: DataSpec, root: Path, mean: torch.Tensor, std: torch.Tensor,
                   device: torch.device | str = "cpu", *, look: Look | None = None) -> Tensors:
    """The official test split, normalised with the search's training statistics.

    ``look`` is called before the first file is read and must record the look (``hpsearch
    best --retrain`` writes it to the study); without one, and in a search worker, the read
    is refused.
    """
    source = get_source(spec.dataset)
    ensure_files(source, root, "test")
    x, y = source.read(root, "test", look=look)
    dev = torch.device(device)
    return Tensors(x.contiguous().to(dev), y.to(dev), mean.to(dev), std.to(dev))


def _channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (sample) std in 0–1 units, with no float copy of the whole set.

    uint8 images: from a 256-bin histogram per channel (exact; 8.1k 64×64 RGB images in 0.3 s
    here, where float64 sums took 0.7 s under the same load); float images: float64 sums over chunks.
    """
    c = x.shape[1]
    if x.dtype == torch.uint8:
        levels = torch.arange(256, dtype=torch.float64) / 255
        counts = torch.stack([torch.bincount(x[:, i].reshape(-1), minlength=256) for i in range(c)]).double()
        n = counts[0].sum()
        mean = counts @ levels / n
        var = (counts @ levels.square() - n * mean.square()) / max(1.0, float(n) - 1)
    else:
        total = torch.zeros(c, dtype=torch.float64)
        squares = torch.zeros(c, dtype=torch.float64)
        for i in range(0, len(x), chunk):
            xb = x[i:i + chunk].to(torch.float64)
            total += xb.sum(dim=(0, 2, 3))
            squares += xb.square().sum(dim=(0, 2, 3))
        per_channel = x.numel() // c
        mean = total / per_channel
        var = (squares - per_channel * mean.square()) / max(1, per_channel - 1)
    return mean.float(), var.clamp_min(0).sqrt().float().clamp_min(1e-6)
