"""``cae``: a convolutional autoencoder — conv encoder to a latent vector, decoder back to the image.

The course reports' autoencoders, whose encoder a classifier then reuses: ``depth`` blocks of
conv [→ BN] → act → 2×2 max-pool, a dense bottleneck of ``latent`` units, and the mirror
image back up, each block upsampled by a transposed convolution or by nearest/bilinear
resizing followed by a convolution (the checkerboard question). The last convolution is
linear: the output lives in the data's normalised space, as the input does.

:meth:`CAE.transfer_net` is what ``encoder_from=`` a cae checkpoint fine-tunes: the encoder
with a linear head on the latent vector (the decoder is dropped).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hpsearch.errors import InfeasibleModel
from hpsearch.models._options import check, check_common
from hpsearch.models._spec import ModelInfo, ModelSpec, register_model, seeded

if TYPE_CHECKING:
    import torch
    from torch import nn

UPSAMPLING = ("transposed", "nearest", "bilinear")
Upsampling = Literal["transposed", "nearest", "bilinear"]


def check_halvable(name: str, depth: int, shape: tuple[int, int, int]) -> None:
    """One clear line when ``depth`` halvings do not fit the image (the decoder could not come back)."""
    _, h, w = shape
    step = 2 ** depth
    if h % step or w % step:
        raise InfeasibleModel(f"{name} depth {depth} halves the image {depth} times, so its {h}×{w} size must be "
                              f"divisible by {step}; use depth <= {_max_depth(h, w)} or resize the images")


def _max_depth(h: int, w: int) -> int:
    d = 0
    while h % 2 ** (d + 1) == 0 and w % 2 ** (d + 1) == 0:
        d += 1
    return d


def upsample_block(c_in: int, c_out: int, mode: str) -> list[nn.Module]:
    """×2 in height and width: a stride-2 transposed conv, or a resize then a 3×3 conv."""
    from torch import nn

    if mode == "transposed":
        return [nn.ConvTranspose2d(c_in, c_out, 2, stride=2)]
    return [nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {})),
            nn.Conv2d(c_in, c_out, 3, padding=1)]


@functools.cache  # one class per process: checkpoints reload into the same type
def _autoencoder_classes() -> tuple[type, type]:
    from torch import nn

    class AutoEncoder(nn.Module):
        """``decoder(encoder(x))``; the encoder ends in the latent vector."""

        def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
            super().__init__()
            self.encoder, self.decoder = encoder, decoder

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.encoder(x))

    class EncoderClassifier(nn.Module):
        """An autoencoder's encoder with a linear head on its latent vector (weights keep the
        encoder's key names, so a cae checkpoint's weights load into it)."""

        def __init__(self, encoder: nn.Module, latent: int, num_classes: int) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(latent, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(x))

    return AutoEncoder, EncoderClassifier


@register_model("cae")
@dataclass(frozen=True)
class CAE(ModelSpec):
    """``depth`` × (conv [→ BN] → act → max-pool) → dense ``latent`` → the mirror image back."""

    depth: int = 2  # halvings of the image (its size must be divisible by 2**depth)
    filters: int = 16  # channels of the first block, doubled per block
    latent: int = 32  # units of the bottleneck vector
    activation: str = "relu"
    upsampling: Upsampling = "transposed"  # transposed conv, or nearest/bilinear resize + conv
    batch_norm: bool = False
    init: str = "default"
    init_seed: int | None = None

    def __post_init__(self) -> None:
        check(self.depth >= 1, f"depth must be >= 1, got {self.depth}")
        check(self.filters >= 1, f"filters must be >= 1, got {self.filters}")
        check(self.latent >= 1, f"latent must be >= 1, got {self.latent}")
        check(self.upsampling in UPSAMPLING, f"upsampling must be one of {', '.join(UPSAMPLING)}, got {self.upsampling!r}")
        check_common(self.activation, self.init, 0.0)

    def build(self, info: ModelInfo) -> nn.Module:
        from torch import nn

        from hpsearch.models._layers import activation, initialise

        check_halvable("cae", self.depth, info.shape)
        c, h, w = info.shape
        widths = [self.filters * 2**i for i in range(self.depth)]
        bh, bw = h // 2**self.depth, w // 2**self.depth
        AutoEncoder, _ = _autoencoder_classes()

        def norm_act(ch: int) -> list[nn.Module]:
            return [*([nn.BatchNorm2d(ch)] if self.batch_norm else []), activation(self.activation)]

        with seeded(self.init_seed):
            enc: list[nn.Module] = []
            prev = c
            for f in widths:
                enc += [nn.Conv2d(prev, f, 3, padding=1, bias=not self.batch_norm), *norm_act(f), nn.MaxPool2d(2)]
                prev = f
            enc += [nn.Flatten(), nn.Linear(prev * bh * bw, self.latent)]
            dec: list[nn.Module] = [nn.Linear(self.latent, prev * bh * bw), activation(self.activation),
                                    nn.Unflatten(1, (prev, bh, bw))]
            for f in reversed(widths):
                dec += [*upsample_block(prev, f, self.upsampling), *norm_act(f)]
                prev = f
            dec.append(nn.Conv2d(prev, c, 3, padding=1))  # linear: the normalised image
            model = AutoEncoder(nn.Sequential(*enc), nn.Sequential(*dec))
            initialise(model, self.init, self.activation)
        return model

    def transfer_net(self, model: nn.Module) -> nn.Module:
        _, EncoderClassifier = _autoencoder_classes()
        return EncoderClassifier(model.encoder, self.latent, 2)  # the head is replaced for the study's classes
