"""A helper beside a study module: a model spec the study imports (not a study itself)."""

from dataclasses import dataclass

from torch import nn

from hpsearch import ModelSpec, register_model

WIDTH = 32


@register_model("two_layer")
@dataclass(frozen=True)
class TwoLayer(ModelSpec):
    hidden: int = WIDTH

    def build(self, info):  # noqa: ANN001, ANN201
        c, h, w = info.shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, self.hidden), nn.Tanh(),
                             nn.Linear(self.hidden, info.num_classes))
