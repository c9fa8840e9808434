"""``segment``: a class for every pixel (U-Nets), on a dataset whose targets are masks.

Scored per image, then averaged over images, as the course reports score their U-Nets:
pixel accuracy, F1 (= Dice) and IoU of the foreground classes (background excluded), by
torchmetrics. A class absent from both an image's mask and its prediction is left out of
that image's mean; an image where every foreground class is absent from both is perfect (1.0).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hpsearch.tasks._base import Column, Direction, ModelTest, Task, eval_batches

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpsearch.data import DatasetInfo, Tensors

LOSSES = ("ce", "dice")
DISTRIBUTION = 2000  # per-image test F1s kept (the first seed's model) for the report's histogram


def per_image(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    """Pixel accuracy, foreground F1/Dice and IoU of every image (``pred``, ``target``: B×H×W indices)."""
    import torch
    from torchmetrics.functional.segmentation import dice_score, mean_iou

    acc = (pred == target).flatten(1).double().mean(1)
    f1 = dice_score(pred, target, num_classes=num_classes, include_background=False, average="none",
                    input_format="index", aggregation_level="samplewise").double()  # nan: class in neither
    iou = mean_iou(pred, target, num_classes=num_classes, include_background=False, per_class=True,
                   input_format="index").double()  # -1: class in neither
    iou = torch.where(iou < 0, torch.nan, iou)

    def mean_present(v: torch.Tensor) -> torch.Tensor:
        v = v.reshape(len(v), -1)
        present = ~v.isnan()
        total = torch.where(present, v, 0.0).sum(1)
        return torch.where(present.any(1), total / present.sum(1).clamp_min(1), 1.0)

    return {"pixel_acc": acc, "f1": mean_present(f1), "iou": mean_present(iou)}


@dataclass(frozen=True)
class Segment(Task):
    loss_name: str = "ce"
    samples: int = 12  # test images kept with their true and predicted masks

    kind: ClassVar[str] = "segment"
    test_sections: ClassVar[tuple[str, ...]] = ("masks", "distribution")
    METRICS: ClassVar[dict[str, Direction]] = {"loss": "minimize", "pixel_acc": "maximize", "f1": "maximize",
                                               "iou": "maximize"}
    default_metric: ClassVar[str] = "val_f1"
    headline: ClassVar[str] = "f1"
    needs_masks: ClassVar[bool] = True
    augments: ClassVar[bool] = False

    def __init__(self, loss: str = "ce", samples: int = 12, loss_name: str | None = None) -> None:
        name = loss_name or loss
        if name not in LOSSES:
            raise ValueError(f"segment(loss=...) must be one of {', '.join(LOSSES)}, got {name!r}")
        if samples < 0:
            raise ValueError(f"segment(samples=...) must be >= 0, got {samples}")
        object.__setattr__(self, "loss_name", name)
        object.__setattr__(self, "samples", int(samples))

    def check_output(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if out.dim() != 4 or out.shape[-2:] != y.shape[-2:]:
            raise ValueError(f"the segment task needs per-pixel class scores (batch × classes × "
                             f"{'×'.join(map(str, y.shape[-2:]))}) from the model; it returns "
                             f"{'×'.join(map(str, out.shape))} (use model unet)")

    def loss(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, data: Tensors) -> torch.Tensor:
        import torch.nn.functional as F

        target = y.long()
        ce = F.cross_entropy(out, target)
        if self.loss_name == "ce":
            return ce
        prob = out.softmax(1)[:, 1:]  # soft Dice of the foreground classes
        onehot = F.one_hot(target, out.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(prob.dtype)
        inter = (prob * onehot).sum((2, 3))
        dice = (2 * inter + 1) / (prob.sum((2, 3)) + onehot.sum((2, 3)) + 1)
        return ce + (1 - dice).mean()

    def _scores(self, model: nn.Module, data: Tensors, num_classes: int,
                keep: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            model.eval()
            parts: dict[str, list[torch.Tensor]] = {}
            kept: list[torch.Tensor] = []
            for rows, x in eval_batches(data):
                out = model(x).float()
                y = data.y[rows].long()
                pred = out.argmax(1)
                ce = F.cross_entropy(out, y, reduction="none").flatten(1).mean(1)
                for k, v in {"loss": ce.double(), **per_image(pred, y, num_classes)}.items():
                    parts.setdefault(k, []).append(v)
                if sum(len(p) for p in kept) < keep:
                    kept.append(pred[:keep])
            return {k: torch.cat(v) for k, v in parts.items()}, (torch.cat(kept)[:keep] if kept else torch.empty(0))

    def evaluate(self, model: nn.Module, data: Tensors, info: DatasetInfo) -> dict[str, float | None]:
        scores, _ = self._scores(model, data, info.num_classes)
        return {k: float(scores[k].mean()) for k in self.METRICS}

    def test_model(self, model: nn.Module, test: Tensors, info: DatasetInfo, index: int) -> ModelTest:
        scores, pred = self._scores(model, test, info.num_classes, keep=self.samples if index == 0 else 0)
        keep = {"predicted": pred, "f1": scores["f1"][:DISTRIBUTION]} if index == 0 else {}
        return ModelTest({k: float(scores[k].mean()) for k in self.METRICS}, {}, keep)

    def test_record(self, results: list[ModelTest], test: Tensors, info: DatasetInfo) -> dict[str, Any]:
        import torch

        first = results[0].keep
        images = test.pixels(slice(0, self.samples))
        masks = test.y[: self.samples].cpu().to(torch.uint8)
        return {
            "classes": list(info.classes),
            "samples": {"shape": list(images.shape),
                        "pixels": base64.b64encode(images.numpy().tobytes()).decode("ascii"),
                        "masks": base64.b64encode(masks.numpy().tobytes()).decode("ascii"),
                        "predicted": base64.b64encode(first["predicted"].cpu().to(torch.uint8).numpy().tobytes())
                        .decode("ascii")},
            "distribution": {"metric": "f1", "values": [round(v, 4) for v in first["f1"].tolist()]},
        }

    def columns(self, rec: Mapping[str, Any]) -> list[Column]:
        return [Column("loss", "loss"), Column("pixel_acc", "pixel acc", True), Column("f1", "F1 (Dice)"),
                Column("iou", "IoU")]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "loss": self.loss_name, "samples": self.samples}
