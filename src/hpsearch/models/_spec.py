"""The model registry: a model is a frozen dataclass (a *spec*) registered by name.

timm's idea, with the config kept as data: a spec holds every architecture choice and
builds a fresh ``nn.Module`` for a dataset's shape and class count. Its dict form
(``{"name": ..., **fields}``) is what a study stores with each trial and a checkpoint
carries, so a trained model is rebuilt from that dict alone. The registry is the only way
from a name to a class; no call site names a family.

Kept free of torch imports so the read-only commands can rebuild stored configs quickly;
builders import torch when they run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from hpsearch.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn


class ModelInfo(Protocol):
    """What a builder may know about the data: ``shape`` (C, H, W) and ``num_classes``."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def num_classes(self) -> int: ...


class ModelSpec:
    """Base of every model spec. Subclass it as a frozen dataclass and register it.

    Only :meth:`build` is required. The other hooks let a spec own what only it knows:
    where its starting weights come from (:meth:`prepare`), which parameters get which
    learning rate (:meth:`param_groups`) and what changes from epoch to epoch
    (:meth:`on_epoch`, e.g. unfreezing a stage). The trainer calls them and never asks
    which family a model is.
    """

    name: ClassVar[str] = ""  # set by @register_model

    def build(self, info: ModelInfo) -> nn.Module:
        """A freshly initialised module for ``info``'s image shape and classes."""
        raise NotImplementedError(f"{type(self).__name__} must define build(info)")

    def fetch(self) -> None:
        """Make sure the files :meth:`prepare` reads are here (downloading once when online),
        else raise :class:`~hpsearch.errors.ModelError` naming them. ``hpsearch run`` calls it
        for the sampled specs before any worker starts."""

    def prepare(self, model: nn.Module) -> None:
        """Load starting weights and freeze parts, once before training.

        Not called when a checkpoint is reloaded: its state dict already holds the weights.
        """

    def param_groups(self, model: nn.Module, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; one group with the study's learning rate by default."""
        return [{"params": list(model.parameters()), "lr": lr}]

    def on_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called at the start of every epoch (1-based), after ``model.train()``."""

    def transfer_net(self, model: nn.Module) -> nn.Module:
        """The network another study fine-tunes from this spec's checkpoint (``encoder_from=``):
        by default the whole model, whose last Linear becomes the new head; an autoencoder
        gives its encoder with a linear head on the latent vector."""
        return model

    def to_dict(self) -> dict[str, Any]:
        if not self.name:
            raise ModelError(f"{type(self).__name__} is not registered; decorate the class with "
                             f"@register_model(\"{type(self).__name__.lower()}\")")
        return {"name": self.name, **{f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}  # type: ignore[arg-type]


S = TypeVar("S", bound=type)

_REGISTRY: dict[str, type[ModelSpec]] = {}
LEGACY_MODEL = "cnn"  # what a config, trial or checkpoint written by hpsearch 0.1 (no model name) holds
BUILTIN_MODULE = "hpsearch.models"


def register_model(name: str) -> Callable[[S], S]:
    """Class decorator: ``@register_model("tiny_mlp")`` above ``@dataclass(frozen=True)``.

    Registering the same class again (a study module imported twice) replaces it; taking a
    name another module registered, or a built-in one, is refused.
    """
    if not name or not name.replace("_", "").isalnum():
        raise ModelError(f"model name {name!r}: use letters, digits and underscores")

    def decorate(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, ModelSpec)):
            raise ModelError(f"@register_model({name!r}) needs a subclass of hpsearch.ModelSpec, "
                             f"got {getattr(cls, '__name__', cls)!r}")
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen or "__dataclass_fields__" not in cls.__dict__:
            raise ModelError(f"{cls.__name__}: a model spec must be a frozen dataclass; put "
                             f"@register_model({name!r}) above @dataclass(frozen=True)")
        old = _REGISTRY.get(name)
        if old is not None and old.__module__ != cls.__module__:
            owner = "hpsearch" if old.__module__.startswith(BUILTIN_MODULE) else old.__module__
            raise ModelError(f"model name {name!r} is already registered by {owner}; "
                             "register yours under another name")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def registered() -> dict[str, type[ModelSpec]]:
    """Name → spec class, built-ins first."""
    return dict(_REGISTRY)


def spec_class(name: str) -> type[ModelSpec]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"model {name!r} is not registered (known: {', '.join(sorted(_REGISTRY))}); "
                         "import the module that registers it") from None


def spec_from_dict(d: dict[str, Any]) -> ModelSpec:
    """Inverse of :meth:`ModelSpec.to_dict`. A dict without ``name`` is a CNN config written
    before specs existed (hpsearch ≤ 0.1.0 stored the CNN's fields only)."""
    d = dict(d)
    cls = spec_class(d.pop("name", LEGACY_MODEL))
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    # JSON turns tuples into lists; a frozen spec keeps them hashable as tuples
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def is_builtin(spec: ModelSpec | type[ModelSpec]) -> bool:
    cls = spec if isinstance(spec, type) else type(spec)
    return cls.__module__.startswith(BUILTIN_MODULE + ".")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run a builder's initialisation from ``seed`` without disturbing the caller's RNG
    (``None``: from the caller's RNG, i.e. the trial's training seed)."""
    if seed is None:
        yield
        return
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build(spec: ModelSpec, info: ModelInfo, device: torch.device | str | None = None) -> nn.Module:
    """``spec.build(info)`` with a check that a module came back (user code may forget)."""
    from torch import nn

    model = spec.build(info)
    if not isinstance(model, nn.Module):
        raise ModelError(f"{type(spec).__name__}.build returned {type(model).__name__}, not an nn.Module")
    return model if device is None else model.to(device)
