"""``mlp``: a fully connected network on the flattened image (the reports' FCN baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hpsearch.models._options import check, check_common
from hpsearch.models._spec import ModelInfo, ModelSpec, register_model, seeded

if TYPE_CHECKING:
    from torch import nn


@register_model("mlp")
@dataclass(frozen=True)
class MLP(ModelSpec):
    """Flatten → (Linear [→ norm] → act [→ dropout]) per hidden layer → Linear."""

    hidden: tuple[int, ...] = (512, 512)  # widths of the hidden layers; () = logistic regression
    activation: str = "relu"
    dropout: float = 0.0  # after each hidden activation
    norm: Literal["none", "batch", "layer"] = "none"  # between each hidden Linear and its activation
    init: str = "default"
    init_seed: int | None = None

    def __post_init__(self) -> None:
        check(all(isinstance(u, int) and u >= 1 for u in self.hidden),
              f"hidden must be a tuple of widths >= 1, got {self.hidden!r}")
        check(self.norm in ("none", "batch", "layer"), f"norm must be none/batch/layer, got {self.norm!r}")
        check_common(self.activation, self.init, self.dropout)

    def build(self, info: ModelInfo) -> nn.Sequential:
        from torch import nn

        from hpsearch.models._layers import activation, initialise

        c, h, w = info.shape
        features = c * h * w
        layers: list[nn.Module] = [nn.Flatten()]
        with seeded(self.init_seed):
            for units in self.hidden:
                layers.append(nn.Linear(features, units, bias=self.norm != "batch"))
                if self.norm == "batch":
                    layers.append(nn.BatchNorm1d(units))
                elif self.norm == "layer":
                    layers.append(nn.LayerNorm(units))
                layers.append(activation(self.activation))
                if self.dropout > 0:
                    layers.append(nn.Dropout(self.dropout))
                features = units
            layers.append(nn.Linear(features, info.num_classes))
            model = nn.Sequential(*layers)
            initialise(model, self.init, self.activation)
        return model
