"""Plain PyTorch training on resident tensors. Knows nothing about Optuna.

The search reaches in through one door: ``report(metrics)`` is called after every epoch and
may raise (the objective raises ``optuna.TrialPruned`` there). Everything random (init,
shuffling, augmentation, dropout) flows from ``seed``, so the same config + seed + thread
count reproduces a run's curve exactly on the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.config import OPTIMIZERS, OptimConfig, TrialConfig
from hpsearch.data import AUGMENTS, SearchData, Tensors
from hpsearch.models import count_parameters, create_model

# Evaluation batch per device type. On a GPU large batches amortise launch overhead; on a CPU
# they fall out of cache: 5k FashionMNIST images through the reference CNN take 0.47 s at 256
# but 1.37 s at 2048 (1 thread, channels-last; see docs/benchmarks.md).
EVAL_BATCH = {"cpu": 256, "cuda": 2048}


class Diverged(Exception):
    """Training loss became NaN/inf (usually a learning rate far too high)."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"training loss is not finite at epoch {epoch}")
        self.epoch = epoch


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_top1: float
    val_topk: float | None
    seconds: float  # wall time of this epoch, training and validation
    train_seconds: float  # of which training (what the pipeline benchmark compares)


@dataclass
class FitResult:
    model: nn.Module
    history: list[EpochMetrics] = field(default_factory=list)
    n_params: int = 0
    seconds: float = 0.0

    def curves(self) -> dict[str, list[float | None]]:
        return curves_of(self.history)


def curves_of(history: list[EpochMetrics]) -> dict[str, list[float | None]]:
    """Per-epoch curves keyed by metric name (what we store with each trial and retrain run)."""
    keys = [k for k in asdict(history[0]) if k != "epoch"] if history else []
    return {k: [getattr(m, k) for m in history] for k in keys}


def topk_for(num_classes: int) -> int | None:
    """The k of a top-k metric worth reporting: 5 for many classes, 3 for ten-ish, none below 6."""
    if num_classes >= 50:
        return 5
    if num_classes >= 6:
        return 3
    return None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def _memory_format(device: torch.device) -> torch.memory_format:
    # channels-last roughly doubles CPU conv throughput here (see docs/benchmarks.md)
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def make_optimizer(params: list[nn.Parameter] | object, cfg: OptimConfig) -> torch.optim.Optimizer:
    p, lr, wd = params, cfg.lr, cfg.weight_decay
    if cfg.name == "adam":
        return torch.optim.Adam(p, lr=lr, weight_decay=wd)  # type: ignore[arg-type]
    if cfg.name == "adamw":
        return torch.optim.AdamW(p, lr=lr, weight_decay=wd)  # type: ignore[arg-type]
    if cfg.name == "nadam":
        return torch.optim.NAdam(p, lr=lr, weight_decay=wd)  # type: ignore[arg-type]
    if cfg.name == "radam":
        return torch.optim.RAdam(p, lr=lr, weight_decay=wd)  # type: ignore[arg-type]
    if cfg.name == "sgd":
        return torch.optim.SGD(p, lr=lr, weight_decay=wd, momentum=cfg.momentum,  # type: ignore[arg-type]
                               nesterov=cfg.nesterov)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(p, lr=lr, weight_decay=wd, momentum=cfg.momentum)  # type: ignore[arg-type]
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def warm_up() -> None:
    """Pay torch's one-time lazy imports now, before any trial's clock starts.

    The first optimizer a process builds imports ``torch._dynamo`` (1.2–1.7 s here, several
    seconds with eight workers sharing two cores). Inside a trial that second would count as
    the trial's time: its overhead, and its elapsed seconds under ``--pruner median-time``.
    """
    param = torch.zeros(1, requires_grad=True)
    for name in OPTIMIZERS:
        make_optimizer([param], OptimConfig(name=name))


def make_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, epochs: int,
                   steps_per_epoch: int) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """The scheduler and whether it steps per batch (True) or per epoch (False)."""
    total = epochs * steps_per_epoch
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total), True
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total), True
    if cfg.scheduler == "step":  # ÷10 at half and at three quarters of training
        milestones = sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)})
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1), False
    return None, False


@torch.inference_mode()
def evaluate(model: nn.Module, data: Tensors, k: int | None,
             batch_size: int | None = None) -> tuple[float, float, float | None, torch.Tensor]:
    """Mean loss, top-1, top-k and the predicted labels, in batches sized for the device."""
    model.eval()
    batch_size = batch_size or EVAL_BATCH.get(data.x.device.type, 256)
    fmt = _memory_format(data.x.device)
    # sums stay on the device and are read once at the end: no host sync per batch on a GPU
    sums = torch.zeros(3, dtype=torch.float64, device=data.x.device)  # loss, top-1 hits, top-k hits
    preds = []
    for i in range(0, len(data), batch_size):
        x = data.x[i:i + batch_size].contiguous(memory_format=fmt)
        y = data.y[i:i + batch_size]
        logits = model(x).float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        pred = logits.argmax(1)
        preds.append(pred)
        sums[1] += (pred == y).sum()
        if k is not None:
            sums[2] += (logits.topk(k, dim=1).indices == y[:, None]).any(1).sum()
    n = len(data)
    loss_sum, correct1, correctk = sums.tolist()
    return loss_sum / n, correct1 / n, (correctk / n if k is not None else None), torch.cat(preds)


def fit(
    config: TrialConfig,
    data: SearchData,
    *,
    epochs: int,
    seed: int,
    device: torch.device,
    report: Callable[[EpochMetrics], None] | None = None,
) -> FitResult:
    """Train ``config`` for ``epochs`` on ``data.train``, validating on ``data.val`` each epoch."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    fmt = _memory_format(device)
    model = create_model("cnn", config.model, data.info).to(device=device, memory_format=fmt)
    opt = make_optimizer(model.parameters(), config.optim)
    n = len(data.train)
    bs = min(config.batch_size, n)
    steps = n // bs  # drop the ragged last batch: BN and step counts stay well defined
    sched, per_batch = make_scheduler(opt, config.optim, epochs, steps)
    augment = AUGMENTS[config.augment]
    k = topk_for(data.info.num_classes)
    result = FitResult(model=model, n_params=count_parameters(model))
    t_start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen, device=device)
        loss_sum = torch.zeros((), device=device)
        for s in range(steps):
            idx = order[s * bs:(s + 1) * bs]
            x, y = data.train.x[idx], data.train.y[idx]
            if augment is not None:
                x = augment(x, gen)
            x = x.contiguous(memory_format=fmt)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None and per_batch:
                sched.step()
            loss_sum += loss.detach()
        if sched is not None and not per_batch:
            sched.step()
        train_loss = float(loss_sum) / max(1, steps)  # the one host sync of the epoch
        t_train = time.perf_counter() - t0
        if not math.isfinite(train_loss):
            raise Diverged(epoch)
        val_loss, top1, topk, _ = evaluate(model, data.val, k)
        metrics = EpochMetrics(epoch, train_loss, val_loss, top1, topk, time.perf_counter() - t0, t_train)
        result.history.append(metrics)
        if report is not None:
            report(metrics)
    result.seconds = time.perf_counter() - t_start
    return result
