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
a study stored before tasks existed has none and is a classification. The registry is open the
way ``models`` is: ``@register_task("kind")`` on a :class:`Task` subclass (a frozen dataclass
whose fields are its options) in a study module adds one, rebuilt by kind from what the study
stored. The classes import torch only when they evaluate, so reading stored settings stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hpsearch.tasks._base import Direction, ModelTest, Task
from hpsearch.tasks._classify import Classify
from hpsearch.tasks._reconstruct import Reconstruct
from hpsearch.tasks._segment import Segment

__all__ = ["Classify", "Direction", "Reconstruct", "Segment", "ModelTest", "Task", "classify", "from_dict",
           "reconstruct", "register_task", "registered", "segment"]

_KINDS: dict[str, type[Task]] = {"classify": Classify, "reconstruct": Reconstruct, "segment": Segment}
T = TypeVar("T", bound=type[Task])


def register_task(kind: str) -> Callable[[T], T]:
    """Register a :class:`Task` subclass under ``kind`` (what a study stores and rebuilds it by)."""
    def add(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"@register_task({kind!r}) decorates a Task subclass, got {cls!r}")
        if kind in _KINDS and _KINDS[kind] is not cls and _KINDS[kind].__qualname__ != cls.__qualname__:
            raise ValueError(f"task kind {kind!r} is taken by {_KINDS[kind].__qualname__}; choose another name")
        cls.kind = kind
        _KINDS[kind] = cls
        return cls
    return add


def registered() -> list[str]:
    return sorted(_KINDS)


def classify() -> Classify:
    """Class labels by cross-entropy; metrics ``loss``, ``top1``, ``topk`` (default ``val_top1``)."""
    return Classify()


def reconstruct(loss: str = "mse", output: str = "normalized") -> Reconstruct:
    """The input image back (targets = inputs); ``loss`` is ``"mse"`` or ``"l1"`` on pixels in
    [0, 1]; metrics ``loss``, ``mse``, ``psnr``, ``ssim`` (default ``val_psnr``). ``output``: what
    the model returns — ``"normalized"`` images, as it takes them (the built-in ``cae``), or
    ``"pixels"`` in [0, 1] (a decoder ending in Sigmoid)."""
    return Reconstruct(loss=loss, output=output)


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
        raise ValueError(f"stored task kind {kind!r} is not registered (known: {', '.join(registered())}); import "
                         "the study module that registers it (@register_task), or upgrade hpsearch")
    return _KINDS[kind](**d)
