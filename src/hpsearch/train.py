"""Plain PyTorch training on resident tensors. Knows nothing about Optuna.

The search reaches in through one door: ``report(metrics)`` is called after every epoch and
may raise (the objective raises ``optuna.TrialPruned`` there). Everything random (init,
shuffling, augmentation, dropout) flows from ``seed``, so the same config + seed + thread
count reproduces a run's curve exactly on the CPU.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.config import MOMENTUM_OPTIMIZERS, OPTIMIZER_CLASSES, OptimConfig, TrialConfig
from hpsearch.data import AUGMENTS, SearchData, Tensors
from hpsearch.models import build, count_parameters

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
    val_loss: float | None  # None: no validation set (a refit on train + validation)
    val_top1: float | None
    val_topk: float | None
    seconds: float  # wall time of this epoch, training and validation
    train_seconds: float  # of which training (what the pipeline benchmark compares)
    train_top1: float | None = None  # accuracy on the (augmented) training batches as they were trained on


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


def make_optimizer(params: list[dict[str, Any]] | list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """``torch.optim.<cfg.class_name>`` over ``params`` (parameter groups or a flat list).

    Weight decay is passed only when set, so optimizers without it (Rprop) work with the
    default; an argument the optimizer does not take is one clear error.
    """
    cls = getattr(torch.optim, cfg.class_name)
    kwargs: dict[str, Any] = {"lr": cfg.lr, **cfg.args}
    if cfg.weight_decay:
        kwargs["weight_decay"] = cfg.weight_decay
    if cfg.name in MOMENTUM_OPTIMIZERS:
        kwargs["momentum"] = cfg.momentum
    if cfg.name == "sgd":
        kwargs["nesterov"] = cfg.nesterov
    accepted = set(inspect.signature(cls).parameters) - {"params"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"optimizer {cfg.name} takes no {', '.join(unknown)} "
                         f"(it takes {', '.join(sorted(accepted))})")
    return cls(params, **kwargs)


def warm_up() -> None:
    """Pay torch's one-time lazy imports now, before any trial's clock starts.

    The first optimizer a process builds imports ``torch._dynamo`` (1.2–1.7 s here, several
    seconds with eight workers sharing two cores). Inside a trial that second would count as
    the trial's time: its overhead, and its elapsed seconds under ``--pruner median-time``.
    """
    param = torch.zeros(1, requires_grad=True)
    for name in OPTIMIZER_CLASSES:
        make_optimizer([param], OptimConfig(name=name))


def make_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, epochs: int,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The schedule, stepped once per batch (epoch milestones become step milestones, so a
    per-epoch schedule changes the lr at exactly the same batches), warm-up first if asked."""
    total = epochs * steps_per_epoch
    warm = min(cfg.warmup_epochs * steps_per_epoch, max(0, total - 1))
    main_steps = max(1, total - warm)
    sched: torch.optim.lr_scheduler.LRScheduler | None = None
    if cfg.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=main_steps)
    elif cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                    total_steps=total)
    elif cfg.scheduler == "step" and cfg.step_size is not None:
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    elif cfg.scheduler == "step":  # ×gamma at half and at three quarters of training
        milestones = sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)})
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[m * steps_per_epoch for m in milestones],
                                                     gamma=cfg.gamma)
    if not warm:
        return sched
    ramp = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / (warm + 1), total_iters=warm)
    if sched is None:
        return ramp
    return torch.optim.lr_scheduler.SequentialLR(opt, [ramp, sched], milestones=[warm])


@torch.inference_mode()
def evaluate(model: nn.Module, data: Tensors, k: int | None,
             batch_size: int | None = None) -> tuple[float, float, float | None, torch.Tensor]:
    """Mean loss, top-1, top-k and the predicted labels, in batches sized for the device."""
    model.eval()
    batch_size = batch_size or EVAL_BATCH.get(data.device.type, 256)
    fmt = _memory_format(data.device)
    # sums stay on the device and are read once at the end: no host sync per batch on a GPU
    sums = torch.zeros(3, dtype=torch.float64, device=data.device)  # loss, top-1 hits, top-k hits
    preds = []
    for i in range(0, len(data), batch_size):
        x = data.batch(slice(i, i + batch_size)).contiguous(memory_format=fmt)
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


class Training:
    """One training run, advanced an epoch at a time by :meth:`epoch`.

    :func:`fit` is the loop over it. Repeats (``Study(repeats=r)``) step r of these in turn, so
    after every epoch the search sees the mean over seeds and can prune on it.
    """

    def __init__(self, config: TrialConfig, data: SearchData, *, epochs: int, seed: int,
                 device: torch.device) -> None:
        torch.manual_seed(seed)
        self.config, self.data, self.epochs, self.device = config, data, epochs, device
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.fmt = _memory_format(device)
        spec = config.model
        model = build(spec, data.info)
        spec.prepare(model)
        self.model = model.to(device=device, memory_format=self.fmt)
        self.opt = make_optimizer(spec.param_groups(self.model, config.optim.lr), config.optim)
        self.n = len(data.train)
        self.bs = min(config.batch_size, self.n)
        self.steps = self.n // self.bs  # drop the ragged last batch: BN and step counts stay well defined
        self.sched = make_scheduler(self.opt, config.optim, epochs, self.steps)
        self.augment = AUGMENTS[config.augment]
        self.k = topk_for(data.info.num_classes)
        self.history: list[EpochMetrics] = []
        self.n_params = count_parameters(self.model)
        self.seconds = 0.0
        # the global RNG (dropout) is per run: save it, so interleaved runs do not share one stream
        self._rng = torch.get_rng_state()
        self._cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def epoch(self) -> EpochMetrics:
        """Train one epoch, validate, append to ``history`` and return the metrics."""
        epoch = len(self.history) + 1
        if epoch > self.epochs:
            raise RuntimeError(f"this run was set up for {self.epochs} epochs")
        torch.set_rng_state(self._rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state(self._cuda_rng, self.device)
        t0 = time.perf_counter()
        model, data, device, bs = self.model, self.data, self.device, self.bs
        model.train()
        self.config.model.on_epoch(model, epoch)
        order = torch.randperm(self.n, generator=self.gen, device=device)
        loss_sum = torch.zeros((), device=device)
        hits = torch.zeros((), device=device)  # right answers of the training pass itself: no extra pass
        for s in range(self.steps):
            idx = order[s * bs:(s + 1) * bs]
            x, y = data.train.batch(idx), data.train.y[idx]
            if self.augment is not None:
                x = self.augment(x, self.gen)
            x = x.contiguous(memory_format=self.fmt)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            hits += (logits.detach().argmax(1) == y).sum()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.sched is not None:
                self.sched.step()
            loss_sum += loss.detach()
        loss_total, hit_total = torch.stack([loss_sum, hits]).tolist()  # the one host sync of the epoch
        train_loss = loss_total / max(1, self.steps)
        t_train = time.perf_counter() - t0
        self._rng = torch.get_rng_state()
        if self._cuda_rng is not None:
            self._cuda_rng = torch.cuda.get_rng_state(device)
        if not math.isfinite(train_loss):
            raise Diverged(epoch)
        val_loss, top1, topk = evaluate(model, data.val, self.k)[:3] if len(data.val) else (None, None, None)
        metrics = EpochMetrics(epoch, train_loss, val_loss, top1, topk, time.perf_counter() - t0, t_train,
                               hit_total / max(1, self.steps * bs))
        self.history.append(metrics)
        self.seconds += metrics.seconds
        return metrics

    def result(self) -> FitResult:
        return FitResult(model=self.model, history=self.history, n_params=self.n_params, seconds=self.seconds)


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
    t_start = time.perf_counter()
    run = Training(config, data, epochs=epochs, seed=seed, device=device)
    for _ in range(epochs):
        metrics = run.epoch()
        if report is not None:
            report(metrics)
    result = run.result()
    result.seconds = time.perf_counter() - t_start
    return result
