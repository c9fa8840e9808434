"""``reconstruct``: the input image back from the model (autoencoders); targets = inputs.

The model works in the data's normalised space (as every model here does); the loss and the
metrics are taken on pixels in [0, 1], so MSE and PSNR mean what they mean in the papers and
do not depend on the dataset's statistics. Predictions are clamped to [0, 1] for the metrics,
not for the loss (a clamp would stop the gradient of every pixel outside the range).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from hpsearch.tasks._base import Column, Direction, ModelTest, Task, eval_batches, pixels_u8, to_pixels

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpsearch.data import DatasetInfo, Tensors

LOSSES = ("mse", "l1")
SAMPLES = 16  # test images kept with their reconstructions for the report's grid
DISTRIBUTION = 2000  # per-image test PSNRs kept (the first seed's model) for the report's histogram
MAX_PSNR = 100.0  # dB; a pixel-perfect reconstruction has infinite PSNR, which JSON cannot hold


def ssim_kernel(h: int, w: int) -> int:
    """SSIM's usual 11×11 window, or the largest odd one the image holds (7 for 8×8 digits)."""
    side = min(11, h, w)
    return side if side % 2 else side - 1


def per_image(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """MSE, PSNR (dB, data range 1) and SSIM of every image, by torchmetrics; both in [0, 1]."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    mse = (pred - target).square().flatten(1).mean(1)
    psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    k = ssim_kernel(*pred.shape[-2:])
    ssim = cast("torch.Tensor", structural_similarity_index_measure(  # a tuple only with return_full_image
        pred, target, data_range=1.0, kernel_size=k, reduction="none"))
    return {"mse": mse, "psnr": psnr.clamp(max=MAX_PSNR), "ssim": ssim}


OUTPUTS = ("normalized", "pixels")


@dataclass(frozen=True)
class Reconstruct(Task):
    loss_name: str = "mse"
    output: str = "normalized"  # what the model returns: normalised images (as it takes), or pixels in [0, 1]

    kind: ClassVar[str] = "reconstruct"
    test_sections: ClassVar[tuple[str, ...]] = ("reconstructions", "distribution")
    METRICS: ClassVar[dict[str, Direction]] = {"loss": "minimize", "mse": "minimize", "psnr": "maximize",
                                               "ssim": "maximize"}
    default_metric: ClassVar[str] = "val_psnr"
    headline: ClassVar[str] = "psnr"

    def __init__(self, loss: str = "mse", loss_name: str | None = None,  # `loss` reads better in a study
                 output: str = "normalized") -> None:
        name = loss_name or loss
        if name not in LOSSES:
            raise ValueError(f"reconstruct(loss=...) must be one of {', '.join(LOSSES)}, got {name!r}")
        if output not in OUTPUTS:
            raise ValueError(f"reconstruct(output=...) must be one of {', '.join(OUTPUTS)}, got {output!r}")
        object.__setattr__(self, "loss_name", name)
        object.__setattr__(self, "output", output)

    def check_output(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if out.shape != x.shape:
            raise ValueError(f"the reconstruct task needs the model to return images shaped like its input "
                             f"({'×'.join(map(str, x.shape[1:]))}); it returns {'×'.join(map(str, out.shape[1:]))} "
                             "(use model cae, or a spec whose build returns an image)")

    def check_model(self, model: nn.Module) -> None:
        # a decoder ending in Sigmoid returns pixels in (0, 1); taken as normalised images (which go below
        # 0) it trained without complaint to 10.6 dB (issue 33): refused before its first step instead
        from torch import nn

        leaves = [m for m in model.modules() if not list(m.children())]
        if self.output == "normalized" and leaves and isinstance(leaves[-1], (nn.Sigmoid, nn.Hardsigmoid)):
            raise ValueError("the model ends in a Sigmoid, whose outputs are pixels in [0, 1], while reconstruct "
                             "compares normalised images; declare tasks.reconstruct(output='pixels')")

    def pixels(self, out: torch.Tensor, data: Tensors) -> torch.Tensor:
        """The model's output as pixels, unclamped: de-normalised, or as it is (``output="pixels"``)."""
        if self.output == "pixels":
            return out
        return out * data.std[None, :, None, None] + data.mean[None, :, None, None]

    def loss(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, data: Tensors) -> torch.Tensor:
        import torch.nn.functional as F

        mean, std = data.mean[None, :, None, None], data.std[None, :, None, None]
        pred, target = self.pixels(out, data), x * std + mean  # pixels; the prediction unclamped (see above)
        return F.mse_loss(pred, target) if self.loss_name == "mse" else F.l1_loss(pred, target)

    def _scores(self, model: nn.Module, data: Tensors, keep: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Per-image metrics over ``data``, and the first ``keep`` reconstructions in [0, 1]."""
        import torch

        with torch.inference_mode():
            model.eval()
            parts: dict[str, list[torch.Tensor]] = {}
            kept: list[torch.Tensor] = []
            for _, x in eval_batches(data):
                out = model(x).float()
                raw = self.pixels(out, data)
                pred, target = raw.clamp(0, 1), to_pixels(x, data)
                err = (raw - target)
                loss = err.square() if self.loss_name == "mse" else err.abs()
                scores = {"loss": loss.flatten(1).mean(1), **per_image(pred, target)}
                for k, v in scores.items():
                    parts.setdefault(k, []).append(v.double())
                if sum(len(p) for p in kept) < keep:
                    kept.append(pred[:keep])
            out_scores = {k: torch.cat(v) for k, v in parts.items()}
            return out_scores, (torch.cat(kept)[:keep] if kept else torch.empty(0))

    def evaluate(self, model: nn.Module, data: Tensors, info: DatasetInfo) -> dict[str, float | None]:
        scores, _ = self._scores(model, data)
        return {k: float(scores[k].mean()) for k in self.METRICS}

    def test_model(self, model: nn.Module, test: Tensors, info: DatasetInfo, index: int) -> ModelTest:
        scores, recon = self._scores(model, test, keep=SAMPLES if index == 0 else 0)
        keep = {"recon": recon, "psnr": scores["psnr"][:DISTRIBUTION]} if index == 0 else {}
        return ModelTest({k: float(scores[k].mean()) for k in self.METRICS}, {}, keep)

    def test_record(self, results: list[ModelTest], test: Tensors, info: DatasetInfo) -> dict[str, Any]:
        first = results[0].keep
        original = test.pixels(slice(0, SAMPLES))
        return {
            "samples": {"shape": list(original.shape),
                        "pixels": base64.b64encode(original.numpy().tobytes()).decode("ascii"),
                        "reconstructions": base64.b64encode(pixels_u8(first["recon"]).numpy().tobytes()).decode("ascii")},
            "distribution": {"metric": "psnr", "values": [round(v, 3) for v in first["psnr"].tolist()]},
        }

    def columns(self, rec: Mapping[str, Any]) -> list[Column]:
        loss = str(rec.get("task", {}).get("loss", "mse")).upper()
        return [Column("loss", f"loss ({loss})"), Column("mse", "MSE"), Column("psnr", "PSNR dB"), Column("ssim", "SSIM")]

    def to_dict(self) -> dict[str, Any]:
        # output only where it is not the default: what studies stored before it existed reads the same
        return {"kind": self.kind, "loss": self.loss_name, **({"output": self.output} if self.output != "normalized"
                                                               else {})}
