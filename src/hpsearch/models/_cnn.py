"""``cnn``: blocks of convolutions, each followed by a downsampling step, then a dense head.

Covers the CNNs of the course reports: the classic conv → BN → act → max-pool stack (the
default, identical to hpsearch 0.1's only model, so its stored configs and checkpoints keep
loading), unpadded conv-conv-pool blocks (``convs=2, padding="valid"``), stride-2
convolutions instead of pooling, BN after the activation, and a global-average-pool head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hpsearch.errors import InfeasibleModel
from hpsearch.models._options import check, check_common
from hpsearch.models._spec import ModelInfo, ModelSpec, register_model, seeded

if TYPE_CHECKING:
    from torch import nn

Organisation = Literal["same", "double", "half"]


@register_model("cnn")
@dataclass(frozen=True)
class CNN(ModelSpec):
    """``blocks`` × (``convs`` × conv [→ BN] → act, then downsample), then the head."""

    blocks: int = 2
    filters: int = 32  # channels of the first block
    organisation: Organisation = "double"  # how channels change from block to block
    kernel: int = 3
    activation: str = "relu"
    batch_norm: bool = True
    dropout: float = 0.0  # before each dense layer
    dense: int = 128  # hidden units of the head; 0 = linear classifier on the features
    convs: int = 1  # convolutions per block
    # same: the map keeps its size (an even kernel pads one more pixel right and below), valid: each
    # conv shrinks it by kernel - 1, an int: that many pixels of zeros on every side
    padding: Literal["same", "valid"] | int = "same"
    downsample: Literal["maxpool", "avgpool", "stride", "none"] = "maxpool"  # stride: last conv has stride 2
    pool_kernel: int = 2
    pool_stride: int | None = None  # None: the pool kernel (non-overlapping)
    bn_position: Literal["before", "after"] = "before"  # BN before or after the activation
    bias: bool | None = None  # of the convs; None: none where a BN right after it makes it redundant
    head_bias: bool = True  # of the dense layers (bias=False, head_bias=False: no bias anywhere)
    head: Literal["flatten", "gap"] = "flatten"  # gap: global average pool instead of flattening
    init: str = "default"  # default (PyTorch's), kaiming, xavier, orthogonal
    init_seed: int | None = None  # None: initialised from the trial's training seed

    def __post_init__(self) -> None:
        check(self.blocks >= 1, f"blocks must be >= 1, got {self.blocks}")
        check(self.filters >= 1, f"filters must be >= 1, got {self.filters}")
        check(self.convs >= 1, f"convs must be >= 1, got {self.convs}")
        check(self.organisation in ("same", "double", "half"),
              f"organisation must be same/double/half, got {self.organisation!r}")
        check(self.padding in ("same", "valid") or (isinstance(self.padding, int) and not isinstance(self.padding, bool)
                                                   and self.padding >= 0),
              f"padding must be same, valid or a number of pixels >= 0, got {self.padding!r}")
        check(self.kernel >= 1, f"kernel must be >= 1, got {self.kernel}")
        check(self.downsample in ("maxpool", "avgpool", "stride", "none"),
              f"downsample must be maxpool/avgpool/stride/none, got {self.downsample!r}")
        check(self.pool_kernel >= 1 and (self.pool_stride is None or self.pool_stride >= 1),
              "pool_kernel and pool_stride must be >= 1")
        check(self.bn_position in ("before", "after"), f"bn_position must be before/after, got {self.bn_position!r}")
        check(self.head in ("flatten", "gap"), f"head must be flatten/gap, got {self.head!r}")
        check(self.dense >= 0, f"dense must be >= 0, got {self.dense}")
        check_common(self.activation, self.init, self.dropout)

    def block_filters(self) -> list[int]:
        """Channels of each block: the same, doubling, or halving (never below 4)."""
        if self.organisation == "double":
            return [self.filters * 2**i for i in range(self.blocks)]
        if self.organisation == "half":
            return [max(4, self.filters // 2**i) for i in range(self.blocks)]
        return [self.filters] * self.blocks

    def build(self, info: ModelInfo) -> nn.Sequential:
        from torch import nn

        from hpsearch.models._layers import activation, initialise

        c, h, w = info.shape
        bias = self.bias if self.bias is not None else not (self.batch_norm and self.bn_position == "before")
        # (left, right, top, bottom): "same" with an even kernel pads one more after, as TensorFlow and
        # PyTorch's padding="same" do; an odd one (and an int) pads evenly, inside the conv itself
        total = self.kernel - 1 if self.padding == "same" else 2 * self.padding if isinstance(self.padding, int) else 0
        before, after = total // 2, total - total // 2
        pool_stride = self.pool_stride or self.pool_kernel
        layers: list[nn.Module] = []
        with seeded(self.init_seed):
            for b, f in enumerate(self.block_filters()):
                for j in range(self.convs):
                    stride = 2 if self.downsample == "stride" and j == self.convs - 1 and min(h, w) >= 2 else 1
                    h, w = ((s + total - self.kernel) // stride + 1 for s in (h, w))
                    if min(h, w) < 1:
                        raise InfeasibleModel(f"block {b + 1} shrinks the {info.shape[1]}×{info.shape[2]} image "
                                              f"below one pixel ({self.padding} {self.kernel}×{self.kernel} convs)")
                    if before != after:
                        layers.append(nn.ZeroPad2d((before, after, before, after)))
                    layers.append(nn.Conv2d(c, f, self.kernel, stride=stride, padding=before if before == after else 0,
                                            bias=bias))
                    if self.batch_norm and self.bn_position == "before":
                        layers += [nn.BatchNorm2d(f), activation(self.activation)]
                    elif self.batch_norm:
                        layers += [activation(self.activation), nn.BatchNorm2d(f)]
                    else:
                        layers.append(activation(self.activation))
                    c = f
                if self.downsample in ("maxpool", "avgpool") and min(h, w) >= self.pool_kernel:
                    pool = nn.MaxPool2d if self.downsample == "maxpool" else nn.AvgPool2d
                    layers.append(pool(self.pool_kernel, stride=pool_stride))
                    h, w = ((s - self.pool_kernel) // pool_stride + 1 for s in (h, w))
            if self.head == "gap":
                layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
                features = c
            else:
                layers.append(nn.Flatten())
                features = c * h * w
            if self.dense > 0:
                layers += [nn.Dropout(self.dropout), nn.Linear(features, self.dense, bias=self.head_bias),
                           activation(self.activation)]
                features = self.dense
            layers += [nn.Dropout(self.dropout), nn.Linear(features, info.num_classes, bias=self.head_bias)]
            model = nn.Sequential(*layers)
            initialise(model, self.init, self.activation)
        return model
