"""Tasks: what a study's models learn to produce, and how that is scored.

A task owns its loss, its metrics with their directions, the evaluation of a model on a
split, and what the single test evaluation keeps for the report — so the trainer, the
objective and the views ask the task instead of branching on names (torchvision's and
Lightning's idea). Three are built in:

- :func:`classify` — cross-entropy; ``loss``, ``top1``, ``topk`` (the default task);
- :func:`reconstruct` — an image back from itself (autoencoders); ``loss``, ``mse``,
  ``psnr``, ``ssim``, measured on pixels in [0, 1];
- :func:`segment` — a class per pixel (U-Nets) on a dataset with masks; ``loss``,
  ``pixel_acc``, ``f1`` (per-image Dice), ``iou``.

A study stores its task (:meth:`Task.to_dict`), so workers, retrains and reports rebuild it;
a study stored before tasks existed has none and is a classification. The classes import
torch only when they evaluate, so reading stored settings stays fast.
"""

from __future__ import annotations

from typing import Any

from hpsearch.tasks._base import Direction, ModelTest, Task
from hpsearch.tasks._classify import Classify
from hpsearch.tasks._reconstruct import Reconstruct
from hpsearch.tasks._segment import Segment

__all__ = ["Classify", "Direction", "Reconstruct", "Segment", "ModelTest", "Task", "classify", "from_dict",
           "reconstruct", "segment"]

_KINDS: dict[str, type[Task]] = {"classify": Classify, "reconstruct": Reconstruct, "segment": Segment}


def classify() -> Classify:
    """Class labels by cross-entropy; metrics ``loss``, ``top1``, ``topk`` (default ``val_top1``)."""
    return Classify()


def reconstruct(loss: str = "mse") -> Reconstruct:
    """The input image back (targets = inputs); ``loss`` is ``"mse"`` or ``"l1"`` on pixels in
    [0, 1]; metrics ``loss``, ``mse``, ``psnr``, ``ssim`` (default ``val_psnr``)."""
    return Reconstruct(loss=loss)


def segment(loss: str = "ce", samples: int = 12) -> Segment:
    """A class per pixel, on a dataset with masks; ``loss`` is ``"ce"`` (cross-entropy) or
    ``"dice"`` (cross-entropy + soft Dice); metrics ``loss``, ``pixel_acc``, ``f1`` (Dice of the
    foreground per image, averaged over images), ``iou`` (default ``val_f1``). ``samples``: how
    many test images with their true and predicted masks the retrain record keeps."""
    return Segment(loss=loss, samples=samples)


def from_dict(d: dict[str, Any] | None) -> Task:
    """The task a study or checkpoint stored; nothing stored (before tasks existed) is classify."""
    if not d:
        return Classify()
    d = dict(d)
    kind = d.pop("kind", "classify")
    if kind not in _KINDS:
        raise ValueError(f"stored task kind {kind!r} is not known to this hpsearch (known: {', '.join(_KINDS)}); "
                         "upgrade hpsearch to read this study")
    return _KINDS[kind](**d)
