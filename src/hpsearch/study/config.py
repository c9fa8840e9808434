"""What one training run is: the typed, frozen result of sampling a search space.

A study's space function turns an Optuna trial into a :class:`TrialConfig`; the trainer
only ever sees this object, never the trial. The dict form is what we store in the study
database and in checkpoints, so a config can be rebuilt without the study module (for a
model spec the user defined, with its registering module imported: see ``usercode``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hpsearch.data._augment_spec import parse as parse_augment
from hpsearch.models import CNN, ModelSpec, spec_class, spec_from_dict
from hpsearch.models._options import ACTIVATIONS

ModelConfig = CNN  # hpsearch 0.1's name for the one model it had; kept for existing study modules

# torch.optim's optimizers that train with a plain step() (LBFGS needs a closure, SparseAdam
# sparse gradients), by the lower-case name a config uses.
OPTIMIZER_CLASSES = {
    "adadelta": "Adadelta", "adafactor": "Adafactor", "adagrad": "Adagrad", "adam": "Adam",
    "adamax": "Adamax", "adamw": "AdamW", "asgd": "ASGD", "nadam": "NAdam", "radam": "RAdam",
    "rmsprop": "RMSprop", "rprop": "Rprop", "sgd": "SGD",
}
OPTIMIZERS = ("adam", "adamw", "nadam", "radam", "sgd", "rmsprop")  # what space.optimizer searches by default
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULERS = ("none", "cosine", "step", "onecycle")
AUGMENTATIONS = ("none", "flip", "pad_crop", "flip_crop", "rotation", "color_jitter")

__all__ = ["ACTIVATIONS", "AUGMENTATIONS", "OPTIMIZERS", "OPTIMIZER_CLASSES", "SCHEDULERS", "ModelConfig",
           "OptimConfig", "TrialConfig"]


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule.

    ``name`` is any optimizer of :data:`OPTIMIZER_CLASSES` (case-insensitive); ``args`` are
    its other keyword arguments (``{"betas": (0.9, 0.99)}``, Rprop's ``etas``, …).
    ``momentum``/``nesterov`` apply to SGD and RMSprop. Schedules: ``cosine`` and
    ``onecycle`` over the whole run; ``step`` multiplies the lr by ``gamma`` every
    ``step_size`` epochs (``None``: at half and three quarters of the run);
    ``warmup_epochs`` ramps the lr up linearly first (not with onecycle, which has its own).
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    scheduler: str = "none"
    step_size: int | None = None  # epochs between lr decays (scheduler "step")
    gamma: float = 0.1  # lr factor per decay (scheduler "step")
    warmup_epochs: int = 0
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name).lower())
        _check(self.name in OPTIMIZER_CLASSES,
               f"optimizer must be one of {', '.join(OPTIMIZER_CLASSES)}, got {self.name!r}")
        _check(self.scheduler in SCHEDULERS,
               f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.momentum == 0 or self.name in MOMENTUM_OPTIMIZERS,
               f"momentum applies to {'/'.join(MOMENTUM_OPTIMIZERS)} only, not {self.name!r}")
        _check(not self.nesterov or (self.name == "sgd" and self.momentum > 0),
               "nesterov needs optimizer 'sgd' with momentum > 0")
        _check(self.step_size is None or self.step_size >= 1, f"step_size must be >= 1, got {self.step_size}")
        _check(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        _check(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        _check(not (self.warmup_epochs and self.scheduler == "onecycle"),
               "onecycle warms up by itself; leave warmup_epochs at 0")
        reserved = {"lr", "weight_decay", "momentum", "nesterov", "params"} & set(self.args)
        _check(not reserved, f"args must not repeat {', '.join(sorted(reserved))}: they are fields of OptimConfig")

    @property
    def class_name(self) -> str:
        return OPTIMIZER_CLASSES[self.name]


@dataclass(frozen=True)
class TrialConfig:
    """Everything that decides one training run except the data and the seed.

    ``epochs``: this config's own training length (an ablation ladder's rungs train 10 and 25
    epochs in one study), at most the study's ``max_epochs``; None trains ``max_epochs``.
    """

    model: ModelSpec = field(default_factory=CNN)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 64
    augment: str = "none"  # a name of AUGMENTATIONS, or parts joined by "+": "flip+color_jitter(0.2,0.2,0.2)"
    epochs: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelSpec):
            raise ValueError(
                f"model must be a registered hpsearch.ModelSpec, got {type(self.model).__name__}; wrap the "
                "network in a spec: @register_model(\"name\") @dataclass(frozen=True) class X(ModelSpec) "
                "with build(info) returning it")
        if not type(self.model).name or spec_class(type(self.model).name) is not type(self.model):
            raise ValueError(f"{type(self.model).__name__} is not registered; decorate the class with "
                             f"@register_model(\"{type(self.model).__name__.lower()}\")")
        _check(isinstance(self.optim, OptimConfig), f"optim must be an OptimConfig, got {type(self.optim).__name__}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.epochs is None or (isinstance(self.epochs, int) and not isinstance(self.epochs, bool)
                                       and self.epochs >= 1), f"epochs must be an int >= 1 (or None), got {self.epochs!r}")
        parse_augment(self.augment)  # a name of AUGMENTATIONS, or parts composed with '+' (data._augment)

    def to_dict(self) -> dict[str, Any]:
        out = {"model": self.model.to_dict(), "optim": dataclasses.asdict(self.optim),
               "batch_size": self.batch_size, "augment": self.augment}
        if self.epochs is not None:  # only where set: configs stored before it existed read back unchanged
            out["epochs"] = self.epochs
        return out

    def epochs_in(self, max_epochs: int) -> int:
        """How long this config trains in a study of ``max_epochs``; one clear error above it."""
        if self.epochs is None:
            return max_epochs
        if self.epochs > max_epochs:
            raise ValueError(f"TrialConfig(epochs={self.epochs}) is above the study's max_epochs {max_epochs}; "
                             f"raise Study(max_epochs=...) to at least {self.epochs}")
        return self.epochs

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped.

        A model dict without a name is a CNN config stored by hpsearch 0.1.
        """
        d = dict(d)
        model = spec_from_dict(d.pop("model", {}))
        optim = _build(OptimConfig, d.pop("optim", {}))
        return _build(cls, d, model=model, optim=optim)


def _build(cls: type, d: dict[str, Any], **extra: Any) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    return cls(**d, **extra)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
