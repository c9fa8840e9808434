"""``unet``: Ronneberger et al.'s U-Net for per-pixel classes, sized for small images.

``depth`` levels down (double conv → 2×2 max-pool, filters doubling), a bottleneck double
conv, and back up by a transposed convolution or a nearest/bilinear resize followed by a
1×1 convolution (the course reports compare the two), each level concatenated with its
skip connection and double-convolved; a 1×1 convolution gives the class scores per pixel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpsearch.models._autoencoder import UPSAMPLING, Upsampling, check_halvable
from hpsearch.models._options import check, check_common
from hpsearch.models._spec import ModelInfo, ModelSpec, register_model, seeded

if TYPE_CHECKING:
    from torch import nn


@functools.cache  # one class per process: checkpoints reload into the same type
def _unet_class() -> type:
    import torch
    from torch import nn

    class UNetModule(nn.Module):
        def __init__(self, downs: nn.ModuleList, bottom: nn.Module, ups: nn.ModuleList, fuses: nn.ModuleList,
                     head: nn.Module) -> None:
            super().__init__()
            self.downs, self.bottom, self.ups, self.fuses, self.head = downs, bottom, ups, fuses, head
            self.pool = nn.MaxPool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for down in self.downs:
                x = down(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for up, fuse, skip in zip(self.ups, self.fuses, reversed(skips)):
                x = fuse(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    return UNetModule


@register_model("unet")
@dataclass(frozen=True)
class UNet(ModelSpec):
    """Encoder–decoder with skip connections; outputs one score per mask class per pixel."""

    depth: int = 3  # downsamplings (the image size must be divisible by 2**depth)
    filters: int = 16  # channels of the first level, doubled per level
    upsampling: Upsampling = "bilinear"  # transposed conv, or nearest/bilinear resize + 1×1 conv
    activation: str = "relu"
    batch_norm: bool = True
    init: str = "default"
    init_seed: int | None = None

    def __post_init__(self) -> None:
        check(self.depth >= 1, f"depth must be >= 1, got {self.depth}")
        check(self.filters >= 1, f"filters must be >= 1, got {self.filters}")
        check(self.upsampling in UPSAMPLING, f"upsampling must be one of {', '.join(UPSAMPLING)}, got {self.upsampling!r}")
        check_common(self.activation, self.init, 0.0)

    def build(self, info: ModelInfo) -> nn.Module:
        from torch import nn

        from hpsearch.models._layers import activation, initialise

        check_halvable("unet", self.depth, info.shape)

        def double(c_in: int, c_out: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in ((c_in, c_out), (c_out, c_out)):
                layers += [nn.Conv2d(a, b, 3, padding=1, bias=not self.batch_norm),
                           *([nn.BatchNorm2d(b)] if self.batch_norm else []), activation(self.activation)]
            return nn.Sequential(*layers)

        def up(c_in: int, c_out: int) -> nn.Module:
            if self.upsampling == "transposed":
                return nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
            resize = nn.Upsample(scale_factor=2, mode=self.upsampling,
                                 **({"align_corners": False} if self.upsampling == "bilinear" else {}))
            return nn.Sequential(resize, nn.Conv2d(c_in, c_out, 1))

        widths = [self.filters * 2**i for i in range(self.depth + 1)]  # the last is the bottleneck
        with seeded(self.init_seed):
            downs = nn.ModuleList()
            prev = info.shape[0]
            for f in widths[:-1]:
                downs.append(double(prev, f))
                prev = f
            bottom = double(prev, widths[-1])
            ups, fuses = nn.ModuleList(), nn.ModuleList()
            for f in reversed(widths[:-1]):
                ups.append(up(f * 2, f))
                fuses.append(double(f * 2, f))
            model = _unet_class()(downs, bottom, ups, fuses, nn.Conv2d(widths[0], info.num_classes, 1))
            initialise(model, self.init, self.activation)
        return model
