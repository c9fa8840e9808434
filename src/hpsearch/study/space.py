"""Search-space building blocks for study modules.

Each function asks the trial for one part of a :class:`~hpsearch.study.config.TrialConfig` and
takes the ranges as keyword arguments, so a study names only what it narrows::

    def space(trial):
        return TrialConfig(model=space.cnn(trial, blocks=(1, 3)), optim=space.optimizer(trial),
                           batch_size=space.batch_size(trial), augment=space.augment(trial, DIGITS))

Parameters that only make sense in one branch are only asked there (momentum for SGD and
RMSprop, Nesterov for SGD), so TPE never models a value that had no effect. Knobs added
after hpsearch 0.1 (a CNN's padding, downsampling, head, init, …) are fixed at the spec's
default unless given choices: a study written for 0.1 keeps exactly its search space.
``prefix`` names a helper's parameters apart when one space searches several families.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import optuna

from hpsearch.data import DatasetInfo, Source, get_source
from hpsearch.models import ACTIVATIONS, CAE, CNN, FREEZES, MLP, Encoder, ModelSpec, Torchvision, UNet
from hpsearch.models._spec import ModelInfo
from hpsearch.study.config import OPTIMIZERS, SCHEDULERS, OptimConfig, TrialConfig

T = TypeVar("T")


def _maybe(trial: optuna.Trial, name: str, choices: Sequence[T] | None, default: T) -> T:
    """Ask for ``name`` among ``choices``; with none given, the spec's default, not asked."""
    if choices is None:
        return default
    return trial.suggest_categorical(name, list(choices))  # type: ignore[arg-type, return-value]


def cnn(
    trial: optuna.Trial,
    *,
    blocks: tuple[int, int] = (1, 3),
    filters: Sequence[int] = (16, 32, 64),
    organisations: Sequence[str] = ("same", "double", "half"),
    kernels: Sequence[int] = (3, 5),
    activations: Sequence[str] = ACTIVATIONS,
    batch_norm: Sequence[bool] = (True, False),
    dropout: tuple[float, float] = (0.0, 0.5),
    dense: Sequence[int] = (0, 64, 128, 256),
    convs: Sequence[int] | None = None,
    padding: Sequence[str | int] | None = None,
    downsample: Sequence[str] | None = None,
    bn_position: Sequence[str] | None = None,
    head: Sequence[str] | None = None,
    init: Sequence[str] | None = None,
    prefix: str = "",
) -> CNN:
    """A :class:`~hpsearch.models.CNN`. ``convs``, ``padding``, ``downsample`` (maxpool,
    avgpool, stride, none), ``bn_position`` (before, after), ``head`` (flatten, gap) and
    ``init`` are searched only when given choices."""
    p = prefix
    kw: dict[str, Any] = dict(  # asked in hpsearch 0.1's order, so its studies sample as before
        blocks=trial.suggest_int(f"{p}blocks", *blocks),
        filters=trial.suggest_categorical(f"{p}filters", list(filters)),
        organisation=trial.suggest_categorical(f"{p}organisation", list(organisations)),
        kernel=trial.suggest_categorical(f"{p}kernel", list(kernels)),
        activation=trial.suggest_categorical(f"{p}activation", list(activations)),
        batch_norm=trial.suggest_categorical(f"{p}batch_norm", list(batch_norm)),
        dropout=trial.suggest_float(f"{p}dropout", *dropout),
        dense=trial.suggest_categorical(f"{p}dense", list(dense)),
    )
    return CNN(
        **kw,
        convs=_maybe(trial, f"{p}convs", convs, 1),
        padding=_maybe(trial, f"{p}padding", padding, "same"),  # type: ignore[arg-type]
        downsample=_maybe(trial, f"{p}downsample", downsample, "maxpool"),  # type: ignore[arg-type]
        bn_position=_maybe(trial, f"{p}bn_position", bn_position if kw["batch_norm"] else None,  # type: ignore[arg-type]
                           "before"),
        head=_maybe(trial, f"{p}head", head, "flatten"),  # type: ignore[arg-type]
        init=_maybe(trial, f"{p}init", init, "default"),
    )


def mlp(
    trial: optuna.Trial,
    *,
    layers: tuple[int, int] = (1, 3),
    units: Sequence[int] = (64, 128, 256, 512),
    organisations: Sequence[str] = ("same", "half"),
    activations: Sequence[str] = ACTIVATIONS,
    dropout: tuple[float, float] = (0.0, 0.5),
    norms: Sequence[str] | None = None,
    init: Sequence[str] | None = None,
    prefix: str = "",
) -> MLP:
    """An :class:`~hpsearch.models.MLP`: ``layers`` hidden layers of ``units`` (the same
    width, or halving layer by layer, never below 8)."""
    p = prefix
    n = trial.suggest_int(f"{p}layers", *layers)
    width = trial.suggest_categorical(f"{p}units", list(units))
    organisation = trial.suggest_categorical(f"{p}organisation", list(organisations)) if n > 1 else "same"
    hidden = tuple(width if organisation == "same" else max(8, width // 2**i) for i in range(n))
    return MLP(
        hidden=hidden,
        activation=trial.suggest_categorical(f"{p}activation", list(activations)),
        dropout=trial.suggest_float(f"{p}dropout", *dropout),
        norm=_maybe(trial, f"{p}norm", norms, "none"),  # type: ignore[arg-type]
        init=_maybe(trial, f"{p}init", init, "default"),
    )


def torchvision(
    trial: optuna.Trial,
    *,
    archs: Sequence[str] = ("resnet18",),
    weights: Sequence[str | None] = (None,),
    freeze: Sequence[str] = FREEZES,
    freeze_k: tuple[int, int] = (1, 3),
    unfreeze_every: tuple[int, int] = (1, 3),
    backbone_lr: tuple[float, float] | None = None,
    min_size: int = 32,
    prefix: str = "",
) -> Torchvision:
    """A fine-tuned :class:`~hpsearch.models.Torchvision` backbone. ``weights`` are names of
    torchvision weights (``"DEFAULT"``), file paths or ``None`` (random init); ``freeze_k``
    is asked only under ``first_k``, ``unfreeze_every`` only under ``gradual``, and the
    backbone lr multiplier (log scale) only when given a range."""
    p = prefix
    strategy = trial.suggest_categorical(f"{p}freeze", list(freeze))
    return Torchvision(
        arch=_maybe(trial, f"{p}arch", archs if len(archs) > 1 else None, archs[0]),
        weights=_maybe(trial, f"{p}weights", weights if len(weights) > 1 else None, weights[0]),
        freeze=strategy,
        freeze_k=trial.suggest_int(f"{p}freeze_k", *freeze_k) if strategy == "first_k" else 1,
        unfreeze_every=trial.suggest_int(f"{p}unfreeze_every", *unfreeze_every) if strategy == "gradual" else 1,
        backbone_lr=(trial.suggest_float(f"{p}backbone_lr", *backbone_lr, log=True)
                     if backbone_lr is not None and strategy != "head_only" else 1.0),
        min_size=min_size,
    )


def encoder_from(path: str | Path, trial: optuna.Trial | None = None, *, freeze: Sequence[str] = ("head_only",),
                 prefix: str = "", **kw: Any) -> Encoder:
    """The trunk of a checkpoint of ours (``runs/STUDY/trialN-seedS.pt``) with a new head;
    with a trial and several ``freeze`` strategies, the strategy is searched."""
    strategy = freeze[0] if trial is None or len(freeze) == 1 else \
        trial.suggest_categorical(f"{prefix}freeze", list(freeze))
    return Encoder.of(path, freeze=strategy, **kw)


def cae(
    trial: optuna.Trial,
    *,
    depth: tuple[int, int] = (1, 2),
    filters: Sequence[int] = (8, 16, 32),
    latent: Sequence[int] = (16, 32, 64),
    upsampling: Sequence[str] = ("transposed", "nearest", "bilinear"),
    activations: Sequence[str] | None = None,
    batch_norm: Sequence[bool] | None = None,
    prefix: str = "",
) -> CAE:
    """A :class:`~hpsearch.models.CAE` (convolutional autoencoder, for ``tasks.reconstruct()``).
    ``depth`` must keep the image size divisible by ``2**depth`` (28×28: at most 2);
    ``activations`` and ``batch_norm`` are searched only when given choices."""
    p = prefix
    return CAE(
        depth=trial.suggest_int(f"{p}depth", *depth),
        filters=trial.suggest_categorical(f"{p}filters", list(filters)),
        latent=trial.suggest_categorical(f"{p}latent", list(latent)),
        upsampling=trial.suggest_categorical(f"{p}upsampling", list(upsampling)),  # type: ignore[arg-type]
        activation=_maybe(trial, f"{p}activation", activations, "relu"),
        batch_norm=_maybe(trial, f"{p}batch_norm", batch_norm, False),
    )


def unet(
    trial: optuna.Trial,
    *,
    depth: tuple[int, int] = (2, 3),
    filters: Sequence[int] = (8, 16, 32),
    upsampling: Sequence[str] = ("nearest", "bilinear"),
    activations: Sequence[str] = ("relu", "elu"),
    batch_norm: Sequence[bool] | None = None,
    prefix: str = "",
) -> UNet:
    """A :class:`~hpsearch.models.UNet` (for ``tasks.segment()``): depth, base filters,
    upsampling mode and activation; ``batch_norm`` is searched only when given choices."""
    p = prefix
    return UNet(
        depth=trial.suggest_int(f"{p}depth", *depth),
        filters=trial.suggest_categorical(f"{p}filters", list(filters)),
        upsampling=trial.suggest_categorical(f"{p}upsampling", list(upsampling)),  # type: ignore[arg-type]
        activation=trial.suggest_categorical(f"{p}activation", list(activations)),
        batch_norm=_maybe(trial, f"{p}batch_norm", batch_norm, True),
    )


def optimizer(
    trial: optuna.Trial,
    *,
    names: Sequence[str] = OPTIMIZERS,
    lr: tuple[float, float] = (1e-4, 3e-2),
    weight_decay: tuple[float, float] = (1e-6, 1e-2),
    momentum: tuple[float, float] = (0.8, 0.99),
    schedulers: Sequence[str] = SCHEDULERS,
    warmup_epochs: Sequence[int] | None = None,
) -> OptimConfig:
    """Any optimizer of :data:`~hpsearch.study.config.OPTIMIZER_CLASSES` (``rprop``, ``adagrad``,
    plain ``sgd`` …); momentum is asked for SGD and RMSprop only, Nesterov for SGD. Pass
    ``weight_decay=None`` for optimizers without it (Rprop)."""
    name = trial.suggest_categorical("optimizer", list(names))
    mom, nesterov = 0.0, False
    if name in ("sgd", "rmsprop"):
        mom = trial.suggest_float("momentum", *momentum)
    if name == "sgd":
        nesterov = trial.suggest_categorical("nesterov", [False, True])
    return OptimConfig(
        name=name,
        lr=trial.suggest_float("lr", *lr, log=True),
        weight_decay=trial.suggest_float("weight_decay", *weight_decay, log=True) if weight_decay else 0.0,
        momentum=mom,
        nesterov=nesterov,
        scheduler=trial.suggest_categorical("scheduler", list(schedulers)),
        warmup_epochs=_maybe(trial, "warmup_epochs", warmup_epochs, 0),
    )


def batch_size(trial: optuna.Trial, choices: Sequence[int] = (32, 64, 128)) -> int:
    return trial.suggest_categorical("batch_size", list(choices))


def augment(trial: optuna.Trial, dataset: str | Source | DatasetInfo, choices: Sequence[str] | None = None) -> str:
    """One of the augmentations that preserve this dataset's labels (no flips for digits)."""
    info = dataset if isinstance(dataset, DatasetInfo) else get_source(dataset).info
    allowed = list(choices) if choices is not None else list(info.augmentations)
    bad = [a for a in allowed if a not in info.augmentations]
    if bad:
        raise ValueError(f"augmentation {', '.join(bad)} does not fit {info.name}; "
                         f"choose from {', '.join(info.augmentations)}")
    return trial.suggest_categorical("augment", allowed)


def standard(trial: optuna.Trial, info: DatasetInfo, *, blocks: tuple[int, int] = (1, 3)) -> TrialConfig:
    """The full default space for ``info``'s dataset: every knob, ranges that suit small images."""
    return TrialConfig(
        model=cnn(trial, blocks=blocks),
        optim=optimizer(trial),
        batch_size=batch_size(trial),
        augment=augment(trial, info),
    )


def match_params(target: int | ModelSpec, make: Callable[[int], ModelSpec], info: ModelInfo | str | Source,
                 widths: Sequence[int] = tuple(range(1, 1025))) -> ModelSpec:
    """The ``make(width)`` whose parameter count is closest to ``target``'s.

    For the reports' fair comparisons — "a CNN with the same parameter count as this MLP"::

        mlp = MLP(hidden=(512, 512))
        cnn = space.match_params(mlp, lambda f: CNN(blocks=2, filters=f, dense=64), "fashion_mnist")

    ``widths`` must make parameter counts grow with the width (they do for every built-in
    knob); it is bisected, so a wide range costs a dozen throwaway builds.
    """
    from hpsearch.models import measure

    shape_info = get_source(info).info if isinstance(info, (str, Source)) else info
    goal = target if isinstance(target, int) else measure(target, shape_info).params
    ws = sorted(widths)
    lo, hi = 0, len(ws) - 1
    count = {}

    def params(i: int) -> int:
        if i not in count:
            count[i] = measure(make(ws[i]), shape_info).params
        return count[i]

    while lo < hi:  # first width with at least the goal's parameters
        mid = (lo + hi) // 2
        if params(mid) < goal:
            lo = mid + 1
        else:
            hi = mid
    best = min({lo, max(0, lo - 1)}, key=lambda i: abs(params(i) - goal))
    return make(ws[best])
