"""The bridge between an Optuna trial and the plain trainer.

Turns a trial into a config (via the study's space), trains it, reports the study metric to
Optuna after every epoch, prunes when the pruner says so, and records the evidence each
trial carries as user attributes: curves, parameter count, seconds, device and seed.

With ``repeats`` r > 1 the config trains with r seeds, an epoch of each in turn (or of all r at
once, fused into one model, where :func:`hpsearch.fused.fusion_wanted` says so): after every
epoch the pruner sees the mean over the seeds so far trained that far (a config that is good
on one lucky seed is not kept alive by it), and the trial's value is the mean at the end.
A multi-objective study returns one value per objective and is never pruned (Optuna's
pruners compare one intermediate value; which one of several would be arbitrary).
"""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
import torch

from hpsearch import records
from hpsearch.data import SearchData
from hpsearch.errors import InfeasibleModel
from hpsearch.fused import train_together
from hpsearch.models import Size, measure
from hpsearch.samplers import SEED_PARAM
from hpsearch.seeds import derive_seed, trial_seed
from hpsearch.study import COST_ATTRS, StoredSettings, Study
from hpsearch.train import Diverged, EpochMetrics, curves_of

EpochHook = Callable[[int, EpochMetrics], None]  # (trial number, metrics)


@dataclass
class Objective:
    study: Study
    settings: StoredSettings
    data: SearchData
    device: torch.device
    on_epoch: EpochHook | None = None

    def __call__(self, trial: optuna.Trial) -> float | Sequence[float]:
        # where it runs, first: a trial out of GPU memory asks which others share its device (hpsearch.oom)
        trial.set_user_attr("device", str(self.device))
        trial.set_user_attr("threads", torch.get_num_threads())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        seeds = self.seeds(trial)
        config = self.study.space(trial)
        history: list[EpochMetrics] = []
        per_seed: list[list[float]] = [[] for _ in seeds]
        trial.set_user_attr("seed", seeds[0])
        if len(seeds) > 1:
            trial.set_user_attr("seeds", seeds)
        records.put(trial, records.CONFIG, config.to_dict())
        trial.set_user_attr("model", config.model.name)
        try:
            size = measure(config.model, self.data.info)  # a throwaway CPU copy, no weights read
        except InfeasibleModel as err:
            trial.set_user_attr("rejected", str(err))
            raise optuna.TrialPruned(f"rejected before training: {err}") from None
        trial.set_user_attr("n_params", size.params)
        trial.set_user_attr("n_trainable", size.trainable)
        trial.set_user_attr("flops", size.flops)
        too_big = _over_limit(size, self.settings)
        if too_big:
            trial.set_user_attr("rejected", too_big)
            raise optuna.TrialPruned(f"rejected before training: {too_big}")

        metric = self.settings.metric
        epochs = self.settings.max_epochs
        task = self.settings.task
        # the repeats train fused where that is wanted and they can (hpsearch.fused), else in turn
        if self.device.type == "cuda":  # what --workers auto packs by (workers.GPU_PEAK_ATTR)
            torch.cuda.reset_peak_memory_stats(self.device)
        runs = train_together([config] * len(seeds), self.data, epochs=epochs, seeds=seeds, device=self.device,
                              task=task)
        if runs.fused:
            trial.set_user_attr("fused", len(seeds))
        try:
            for _ in range(epochs):
                outcomes = runs.epoch()
                diverged = next((o for o in outcomes.values() if isinstance(o, Diverged)), None)
                if diverged is not None:
                    raise diverged
                each = [o for o in outcomes.values() if isinstance(o, EpochMetrics)]
                for values, m in zip(per_seed, each):
                    values.append(float(getattr(m, metric)))
                m = mean_metrics(each)
                history.append(m)
                if not self.settings.multi:
                    trial.report(getattr(m, metric), m.epoch)
                if self.on_epoch is not None:
                    self.on_epoch(trial.number, m)
                if not self.settings.multi and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {m.epoch}")
        except Diverged as err:
            trial.set_user_attr("diverged_at_epoch", err.epoch)
            raise optuna.TrialPruned(str(err)) from None
        finally:
            _record_curves(trial, history, per_seed if len(seeds) > 1 else None, metric)
            if self.device.type == "cuda":
                trial.set_user_attr("gpu_peak_bytes", torch.cuda.max_memory_allocated(self.device))
        seconds = runs.seconds
        trial.set_user_attr("seconds", round(seconds, 3))
        value = float(getattr(history[-1], metric))
        if not self.settings.multi:
            return value
        attrs = {"n_params": size.params, "flops": size.flops, "seconds": seconds}
        return [float(attrs[COST_ATTRS[name]]) if name in COST_ATTRS else float(getattr(history[-1], name))
                for name in self.settings.objectives]

    def seeds(self, trial: optuna.Trial) -> list[int]:
        """The training seeds of this trial: a grid's seed cell, or one per repeat."""
        grid_seeds = (self.settings.sampler.dimensions or {}).get(SEED_PARAM)
        if grid_seeds:  # a grid's seed dimension is the training seed itself (asked first: a recorded param)
            return [int(trial.suggest_categorical(SEED_PARAM, grid_seeds))]
        first = trial_seed(self.settings.seed, trial.number)  # what a study without repeats trains with
        return [first, *(derive_seed(self.settings.seed, "repeat", trial.number, i)
                         for i in range(1, self.settings.repeats))]


def mean_metrics(each: list[EpochMetrics]) -> EpochMetrics:
    """One epoch of r runs as one: metrics averaged, times summed (they ran one after another)."""
    if len(each) == 1:
        return each[0]

    def mean(values: list[float | None]) -> float | None:
        return None if None in values else statistics.fmean(values)  # type: ignore[arg-type]

    first = each[0]
    return EpochMetrics(
        first.epoch, statistics.fmean(m.train_loss for m in each),
        {k: mean([m.val.get(k) for m in each]) for k in first.val},
        sum(m.seconds for m in each), sum(m.train_seconds for m in each),
        {k: mean([m.train.get(k) for m in each]) for k in first.train})


def _over_limit(size: Size, settings: StoredSettings) -> str | None:
    """Why a config breaks the study's size limits, or None. Such a trial is pruned before any
    training step: it counts toward the budget (the budget counts configs tried, and a space
    mostly over the limit must still end), costs no training, and TPE learns to avoid it."""
    if settings.max_params is not None and size.params > settings.max_params:
        return f"{size.params:,} parameters > max_params {settings.max_params:,}"
    if settings.max_flops is not None and size.flops > settings.max_flops:
        return f"{size.flops:,} FLOPs > max_flops {settings.max_flops:,}"
    return None


def _record_curves(trial: optuna.Trial, history: list[EpochMetrics], per_seed: list[list[float]] | None,
                   metric: str) -> None:
    """Mean curves under ``curves``; with repeats also each seed's metric curve, so a report can
    show the spread behind the mean (``repeat_curves``, ``repeat_values``: each seed's last)."""
    if not history:
        return
    records.put(trial, records.CURVES, curves_of(history))
    trial.set_user_attr("epochs", len(history))
    if per_seed is not None:
        records.put(trial, records.REPEAT_CURVES, {metric: per_seed})
        trial.set_user_attr("repeat_values", [v[-1] for v in per_seed if v])
