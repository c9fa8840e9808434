"""hpsearch: hyperparameter search for PyTorch image models on a shared Optuna study.

This is the face a study module imports. A study module in ``studies/`` builds a
:class:`Study` from a dataset and a search space function; :mod:`hpsearch.space` holds the
building blocks for that function, :mod:`hpsearch.samplers` the stored samplers,
:mod:`hpsearch.datasets` dataset objects for your own data, :mod:`hpsearch.models` the model
specs (register your own with :func:`register_model`) and :mod:`hpsearch.tasks` what the
models learn (classify, reconstruct, segment). :func:`load_checkpoint` rebuilds a retrained
model from its checkpoint alone.

:mod:`hpsearch.api` runs searches, retrains and comparisons from Python (a notebook) and
returns typed results. ``space``, ``samplers``, ``datasets``, ``load_checkpoint`` and ``api`` resolve on first use (PEP 562),
so ``import hpsearch`` stays free of torch for the read-only commands. The packages behind
this face are laid out in docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hpsearch import tasks
from hpsearch.models import CAE, CNN, MLP, Encoder, ModelSpec, Torchvision, UNet, register_model
from hpsearch.study.config import ModelConfig, OptimConfig, TrialConfig
from hpsearch.study.declaration import Study

if TYPE_CHECKING:
    from hpsearch import api
    from hpsearch.data import datasets
    from hpsearch.results.checkpoints import load_checkpoint
    from hpsearch.study import samplers, space

__version__ = "0.2.0"

_LAZY = {"space": ("hpsearch.study.space", None), "samplers": ("hpsearch.study.samplers", None),
         "datasets": ("hpsearch.data.datasets", None),
         "load_checkpoint": ("hpsearch.results.checkpoints", "load_checkpoint"), "api": ("hpsearch.api", None)}

__all__ = ["CAE", "CNN", "api", "MLP", "Encoder", "ModelConfig", "ModelSpec", "OptimConfig", "Study", "Torchvision",
           "TrialConfig", "UNet", "__version__", "datasets", "load_checkpoint", "register_model", "samplers",
           "space", "tasks"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        return getattr(value, attr) if attr else value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
