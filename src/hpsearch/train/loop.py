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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hpsearch.data import SearchData
from hpsearch.data._augment import compose
from hpsearch.models import build, count_parameters
from hpsearch.study.config import MOMENTUM_OPTIMIZERS, OPTIMIZER_CLASSES, OptimConfig, TrialConfig
from hpsearch.tasks import Task, classify
from hpsearch.train.capture import Captured
from hpsearch.train.options import Speedups

__all__ = ["Diverged", "EpochMetrics", "FitResult", "Training", "curves_of", "fit", "make_optimizer", "make_scheduler",
           "resolve_device", "warm_up"]


class Diverged(Exception):
    """Training loss became NaN/inf (usually a learning rate far too high)."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"training loss is not finite at epoch {epoch}")
        self.epoch = epoch


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's numbers. The validation metrics are the task's (``val_loss``, ``val_top1``, …
    for classify; ``val_psnr`` … for reconstruct) and read as attributes: ``m.val_top1``."""

    epoch: int  # 1-based
    train_loss: float
    val: dict[str, float | None]  # "val_<metric>" → value; None: no validation set (a refit on train + validation)
    seconds: float  # wall time of this epoch, training and validation
    train_seconds: float  # of which training (what the pipeline benchmark compares)
    train: dict[str, float | None] = field(default_factory=dict)  # "train_top1": on the (augmented) batches as trained

    def __getattr__(self, name: str) -> float | None:
        parts = self.__dict__
        for part in ("val", "train"):
            if name in parts.get(part, ()):
                return parts[part][name]
        raise AttributeError(f"{type(self).__name__} has no metric {name!r}")

    def value(self, name: str) -> float | None:
        """A metric by its stored name (``train_loss``, ``val_psnr``, …)."""
        return getattr(self, name)

    def as_dict(self) -> dict[str, float | None]:
        """Every number keyed by name, in the order the curves have always had (0.3's, for classify)."""
        return {"train_loss": self.train_loss, **self.val, "seconds": self.seconds,
                "train_seconds": self.train_seconds, **self.train}


@dataclass
class FitResult:
    model: nn.Module
    history: list[EpochMetrics] = field(default_factory=list)
    n_params: int = 0
    seconds: float = 0.0
    fused: bool = False  # trained fused with other runs of its shape (hpsearch.train.fused); seconds is its share

    def curves(self) -> dict[str, list[float | None]]:
        return curves_of(self.history)


def curves_of(history: list[EpochMetrics]) -> dict[str, list[float | None]]:
    """Per-epoch curves keyed by metric name (what we store with each trial and retrain run)."""
    keys = list(history[0].as_dict()) if history else []
    return {k: [m.as_dict().get(k) for m in history] for k in keys}


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
    param = nn.Parameter(torch.zeros(1))
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


class Training:
    """One training run, advanced an epoch at a time by :meth:`epoch`.

    :func:`fit` is the loop over it. Repeats (``Study(repeats=r)``) step r of these in turn, so
    after every epoch the search sees the mean over seeds and can prune on it.
    """

    def __init__(self, config: TrialConfig, data: SearchData, *, epochs: int, seed: int,
                 device: torch.device, task: Task | None = None, speedups: Speedups = Speedups()) -> None:
        self.task = task or classify()
        self.task.check_augment(config.augment)
        torch.manual_seed(seed)
        self.config, self.data, self.epochs, self.device = config, data, epochs, device
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.fmt = _memory_format(device)
        spec = config.model
        model = build(spec, data.info)
        self.task.check_model(model)
        spec.prepare(model)
        self.model = model.to(device=device, memory_format=self.fmt)  # type: ignore[call-overload]  # stubs lack memory_format
        # the training forward (and its backward): captured in CUDA graphs if asked, else the model itself
        self.speedups = speedups
        self.forward = Captured(self.model, speedups.captures(device))
        self.opt = make_optimizer(spec.param_groups(self.model, config.optim.lr), config.optim)
        self.n = len(data.train)
        self.bs = min(config.batch_size, self.n)
        self.steps = self.n // self.bs  # drop the ragged last batch: BN and step counts stay well defined
        self.sched = make_scheduler(self.opt, config.optim, epochs, self.steps)
        self.augment = compose(config.augment)
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
        task = self.task
        loss_sum = torch.zeros((), device=device)
        # the task's training-batch scores (classify: right answers) from the training pass itself: no extra pass
        counts = {name: torch.zeros((), device=device) for name in task.TRAIN_METRICS}
        for s in range(self.steps):
            idx = order[s * bs:(s + 1) * bs]
            x, y = data.train.batch(idx), data.train.y[idx]
            if self.augment is not None:
                x = self.augment(x, self.gen)
            x = x.contiguous(memory_format=self.fmt)
            out = self.forward(x)
            if epoch == 1 and s == 0:
                task.check_output(out, x, y)
            loss = task.loss(out, x, y, data.train)
            for name, v in task.train_counts(out, x, y).items():
                counts.setdefault(name, torch.zeros((), device=device)).add_(v)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.sched is not None:
                self.sched.step()
            loss_sum += loss.detach()
        loss_total, *count_totals = torch.stack([loss_sum, *counts.values()]).tolist()  # the one host sync of the epoch
        t_train = time.perf_counter() - t0
        self._rng = torch.get_rng_state()
        if self._cuda_rng is not None:
            self._cuda_rng = torch.cuda.get_rng_state(device)
        return self.close_epoch(epoch, loss_total, dict(zip(counts, count_totals)), t_train)

    def close_epoch(self, epoch: int, loss_total: float, count_totals: dict[str, float],
                    train_seconds: float) -> EpochMetrics:
        """Validate after an epoch's training pass and record it: shared with the fused trainer
        (:mod:`hpsearch.train.fused`), which trains several runs' passes as one, so a fused run's
        metrics are made exactly as a separate run's are."""
        train_loss = loss_total / max(1, self.steps)
        if not math.isfinite(train_loss):
            raise Diverged(epoch)
        task = self.task
        t_val = time.perf_counter()
        val = task.evaluate(self.model, self.data.val, self.data.info) if len(self.data.val) else dict.fromkeys(task.METRICS)
        seen = max(1, self.steps * self.bs)
        metrics = EpochMetrics(epoch, train_loss, {f"val_{k}": val.get(k) for k in task.METRICS},
                               train_seconds + time.perf_counter() - t_val, train_seconds,
                               {f"train_{k}": v / seen for k, v in count_totals.items()})
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
    task: Task | None = None,
    speedups: Speedups = Speedups(),
) -> FitResult:
    """Train ``config`` for ``epochs`` on ``data.train``, validating on ``data.val`` each epoch,
    for ``task`` (default: classification)."""
    t_start = time.perf_counter()
    run = Training(config, data, epochs=epochs, seed=seed, device=device, task=task, speedups=speedups)
    for _ in range(epochs):
        metrics = run.epoch()
        if report is not None:
            report(metrics)
    result = run.result()
    result.seconds = time.perf_counter() - t_start
    return result


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Train with ``n`` CPU threads (a trial's recorded count), then restore the process's.

    A CPU run reproduces bit for bit only with the thread count it ran with: the reductions of
    a convolution's backward pass split the work by thread. A search worker ran with one thread
    beside others; retraining the trial from its seed in a two-thread process gave 0.5774 where
    the search had 0.5790 (issue 33). ``None`` (a trial recorded before threads were): unchanged.
    """
    before = torch.get_num_threads()
    if n is not None and n >= 1:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
