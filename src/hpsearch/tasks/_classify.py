"""``classify``: one label per image, by cross-entropy (what hpsearch did before tasks existed).

Its record holds what 0.3 wrote (per-seed loss, top-1, top-k, the confusion matrix summed over
the seeds, each class's accuracy, the first test images with predictions), so old records and
new ones read the same everywhere. It now adds each seed's confusion matrix
(``confusion_per_seed``) and the images the first seed's model got wrong (``mistakes``): a report
shows the mistakes, which say more than the first images (mostly right); readers of an older
record fall back to the first images.
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

    from hpsearch.data import DatasetInfo, Source, Tensors

SAMPLE_IMAGES = 30  # test images whose predictions are kept for the report's image grid
MISTAKES = 30  # misclassified test images kept (with their labels and predictions) for the report


def topk_for(num_classes: int) -> int | None:
    """The k of a top-k metric worth reporting: 5 for many classes, 3 for ten-ish, none below 6."""
    if num_classes >= 50:
        return 5
    if num_classes >= 6:
        return 3
    return None


def evaluate(model: nn.Module, data: Tensors, k: int | None,
             batch_size: int | None = None) -> tuple[float, float, float | None, torch.Tensor]:
    """Mean loss, top-1, top-k and the predicted labels, in batches sized for the device."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        model.eval()
        # sums stay on the device and are read once at the end: no host sync per batch on a GPU
        sums = torch.zeros(3, dtype=torch.float64, device=data.device)  # loss, top-1 hits, top-k hits
        preds = []
        for rows, x in eval_batches(data, batch_size):
            y = data.y[rows]
            logits = model(x).float()
            sums[0] += F.cross_entropy(logits, y, reduction="sum")
            pred = logits.argmax(1)
            preds.append(pred)
            sums[1] += (pred == y).sum()
            if k is not None:
                sums[2] += (logits.topk(k, dim=1).indices == y[:, None]).any(1).sum()
        n = len(data)
        loss_sum, correct1, correctk = sums.tolist()
        return loss_sum / n, correct1 / n, (correctk / n if k is not None else None), torch.cat(preds)


def mistakes(results: list[ModelTest], test: Tensors, keep: int = MISTAKES) -> dict[str, Any]:
    """The first model's misclassified test images, at most ``keep``: those the most models missed
    first (a mistake every seed makes is about the data or the task, one seed's is noise), then by
    index. ``total`` counts them all; ``wrong_in`` is how many of the ``models`` missed each."""
    import torch

    y = test.y.cpu()
    missed = torch.stack([r.keep["predicted"] != y for r in results]).sum(0)
    first = results[0].keep["predicted"]
    wrong = (first != y).nonzero().flatten().tolist()
    chosen = sorted(wrong, key=lambda i: (-int(missed[i]), i))[:keep]
    pixels = (torch.cat([test.pixels(slice(i, i + 1)) for i in chosen]) if chosen
              else test.pixels(slice(0, 0)))
    return {"total": len(wrong), "models": len(results), "indices": chosen, "labels": y[chosen].tolist(),
            "predicted": first[chosen].tolist(), "wrong_in": missed[chosen].tolist(), "shape": list(pixels.shape),
            "pixels": base64.b64encode(pixels.numpy().tobytes()).decode("ascii")}


@dataclass(frozen=True)
class Classify(Task):
    kind: ClassVar[str] = "classify"
    test_sections: ClassVar[tuple[str, ...]] = ("confusion", "per_class", "mistakes")
    METRICS: ClassVar[dict[str, Direction]] = {"loss": "minimize", "top1": "maximize", "topk": "maximize"}
    TRAIN_METRICS: ClassVar[tuple[str, ...]] = ("top1",)
    default_metric: ClassVar[str] = "val_top1"
    headline: ClassVar[str] = "top1"

    def directions(self) -> dict[str, Direction]:
        return {"val_top1": "maximize", "val_topk": "maximize", "val_loss": "minimize"}  # 0.3's order

    def check_source(self, source: Source) -> None:
        super().check_source(source)
        if getattr(source, "has_masks", False):
            raise ValueError(f"{source.label} has masks, not class labels; use tasks.segment() "
                             "(or tasks.reconstruct()) with it")

    def check_output(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if out.dim() != 2:
            raise ValueError(f"the classify task needs class scores (batch × classes) from the model; it returns "
                             f"{'×'.join(map(str, out.shape))} (an image model such as cae or unet needs "
                             "tasks.reconstruct() or tasks.segment())")

    def loss(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, data: Tensors) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(out, y)

    def train_counts(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        out = out.detach()
        counts = {"top1": (out.argmax(1) == y).sum()}
        k = topk_for(out.shape[1])
        if k is not None:  # the same k as validation's, so train_topk and val_topk are one metric
            counts["topk"] = (out.topk(k, dim=1).indices == y[:, None]).any(1).sum()
        return counts

    def evaluate(self, model: nn.Module, data: Tensors, info: DatasetInfo) -> dict[str, float | None]:
        loss, top1, topk, _ = evaluate(model, data, topk_for(info.num_classes))
        return {"loss": loss, "top1": top1, "topk": topk}

    def test_model(self, model: nn.Module, test: Tensors, info: DatasetInfo, index: int) -> ModelTest:
        import torch

        n_cls = info.num_classes
        loss, top1, topk, pred = evaluate(model, test, topk_for(n_cls))
        confusion = torch.bincount(test.y.cpu() * n_cls + pred.cpu(), minlength=n_cls * n_cls).view(n_cls, n_cls)
        per_class = confusion.diag().double() / confusion.sum(1).clamp_min(1).double()  # recall of each true class
        return ModelTest({"loss": loss, "top1": top1, "topk": topk},
                         {"test_per_class_top1": [round(v, 6) for v in per_class.tolist()],
                          "sample_predictions": pred[:SAMPLE_IMAGES].tolist()},
                         {"confusion": confusion, "predicted": pred.cpu()})

    def test_record(self, results: list[ModelTest], test: Tensors, info: DatasetInfo) -> dict[str, Any]:
        pixels = test.pixels(slice(0, SAMPLE_IMAGES))
        return {
            "topk_k": topk_for(info.num_classes),
            "confusion": sum(r.keep["confusion"] for r in results).tolist(),  # summed over the seeds (as in 0.3)
            "confusion_per_seed": [r.keep["confusion"].tolist() for r in results],
            "classes": list(info.classes),
            "samples": {"labels": test.y[:SAMPLE_IMAGES].cpu().tolist(), "shape": list(pixels.shape),
                        "pixels": base64.b64encode(pixels.numpy().tobytes()).decode("ascii")},
            "mistakes": mistakes(results, test),
        }

    def columns(self, rec: Mapping[str, Any]) -> list[Column]:
        k = rec.get("topk_k")
        return [Column("loss", "loss"), Column("top1", "top-1", True), *([Column("topk", f"top-{k}", True)] if k else [])]
