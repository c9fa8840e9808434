"""Models: specs registered by name, built for a dataset's shape (see ``_spec`` for why).

Built-in specs: :class:`CNN` (``cnn``), :class:`MLP` (``mlp``), :class:`Torchvision`
(``torchvision``: any torchvision classification network, fine-tuned with freeze
strategies) and :class:`Encoder` (``encoder``: the trunk of one of our checkpoints with a
new head); for the image tasks :class:`CAE` (``cae``: a convolutional autoencoder) and
:class:`UNet` (``unet``). A study module adds its own with ``@register_model("name")``.

The spec classes import torch only when a model is built, so reading stored configs stays
fast; :func:`measure` and :func:`count_parameters` import it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpsearch.models._autoencoder import CAE
from hpsearch.models._backbones import Encoder, Torchvision
from hpsearch.models._cnn import CNN
from hpsearch.models._mlp import MLP
from hpsearch.models._options import ACTIVATIONS, FREEZES, INITS
from hpsearch.models._spec import (
    LEGACY_MODEL,
    ModelInfo,
    ModelSpec,
    build,
    is_builtin,
    register_model,
    registered,
    spec_class,
    spec_from_dict,
)
from hpsearch.models._unet import UNet

if TYPE_CHECKING:
    from hpsearch.models._measure import Layer, Size, count_parameters, layers, measure

__all__ = ["LEGACY_MODEL", "ACTIVATIONS", "CAE", "CNN", "UNet", "Encoder", "FREEZES", "INITS", "MLP", "Layer", "ModelInfo", "ModelSpec", "Size",
           "Torchvision", "build", "count_parameters", "is_builtin", "measure", "register_model", "registered",
           "spec_class", "spec_from_dict", "layers"]


def __getattr__(name: str) -> Any:
    if name in ("Layer", "Size", "count_parameters", "layers", "measure"):
        from hpsearch.models import _measure

        return getattr(_measure, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
