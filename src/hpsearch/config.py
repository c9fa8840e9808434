"""What one training run is: the typed, frozen result of sampling a search space.

A study's space function turns an Optuna trial into a :class:`TrialConfig`; the trainer
only ever sees this object, never the trial. The dict form is what we store in the study
database and in checkpoints, so a config can be rebuilt without the study module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Organisation = Literal["same", "double", "half"]
ACTIVATIONS = ("relu", "gelu", "silu", "mish", "elu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "nadam", "radam", "sgd", "rmsprop")
SCHEDULERS = ("none", "cosine", "step", "onecycle")
AUGMENTATIONS = ("none", "flip", "pad_crop", "flip_crop", "rotation", "color_jitter")


@dataclass(frozen=True)
class ModelConfig:
    """A plain CNN: ``blocks`` × (conv [→ BN] → act → max-pool), then a dense head."""

    blocks: int = 2
    filters: int = 32  # channels of the first block
    organisation: Organisation = "double"  # how channels change from block to block
    kernel: int = 3
    activation: str = "relu"
    batch_norm: bool = True
    dropout: float = 0.0  # before each dense layer
    dense: int = 128  # hidden units of the head; 0 = linear classifier on the features

    def __post_init__(self) -> None:
        _check(self.blocks >= 1, f"blocks must be >= 1, got {self.blocks}")
        _check(self.filters >= 1, f"filters must be >= 1, got {self.filters}")
        _check(self.organisation in ("same", "double", "half"),
               f"organisation must be same/double/half, got {self.organisation!r}")
        _check(self.kernel % 2 == 1, f"kernel must be odd (same padding), got {self.kernel}")
        _check(self.activation in ACTIVATIONS,
               f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule. ``momentum``/``nesterov`` apply to SGD/RMSprop only."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    scheduler: str = "none"

    def __post_init__(self) -> None:
        _check(self.name in OPTIMIZERS,
               f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        _check(self.scheduler in SCHEDULERS,
               f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(not self.nesterov or (self.name == "sgd" and self.momentum > 0),
               "nesterov needs optimizer 'sgd' with momentum > 0")


@dataclass(frozen=True)
class TrialConfig:
    """Everything that decides one training run except the data, the epochs and the seed."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 64
    augment: str = "none"

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.augment in AUGMENTATIONS,
               f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        d = dict(d)
        model = _build(ModelConfig, d.pop("model", {}))
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
