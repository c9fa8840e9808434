"""The bridge between an Optuna trial and the plain trainer.

Turns a trial into a config (via the study's space), trains it, reports the study metric to
Optuna after every epoch, prunes when the pruner says so, and records the evidence each
trial carries as user attributes: curves, parameter count, seconds, device and seed.

With ``repeats`` r > 1 the config trains with r seeds, an epoch of each in turn (or of all r at
once, fused into one model, where the run's :class:`~hpsearch.train.options.Speedups` fuse): after every
epoch the pruner sees the mean over the seeds so far trained that far (a config that is good
on one lucky seed is not kept alive by it), and the trial's value is the mean at the end.
A multi-objective study returns one value per objective and is never pruned (Optuna's
pruners compare one intermediate value; which one of several would be arbitrary).

A worker may hold several trials at once (``run --trials-per-worker K``, HFTA's cross-job
fusion): :meth:`Objective.train` trains them together, epoch by epoch. Where fusion is wanted,
trials whose models and batch size match (a grid's optimizer variants, a search's same-shaped
draws) train as one model with all their seeds; the others train in turn, an epoch each. Each
trial is still reported, pruned and finished on its own, as soon as its outcome is known.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
import torch

from hpsearch.data import SearchData
from hpsearch.errors import InfeasibleModel
from hpsearch.models import Size, measure
from hpsearch.store import records
from hpsearch.study.config import TrialConfig
from hpsearch.study.declaration import COST_ATTRS, StoredSettings, Study
from hpsearch.study.samplers import SEED_PARAM
from hpsearch.study.seeds import derive_seed, trial_seed
from hpsearch.train.fused import Group, Separate, train_together, why_not_fusable
from hpsearch.train.loop import Diverged, EpochMetrics, curves_of
from hpsearch.train.options import Speedups

EpochHook = Callable[[int, EpochMetrics], None]  # (trial number, metrics)
Outcome = float | list[float] | BaseException  # a trial's value(s), or why it has none (optuna.TrialPruned, an error)
Settle = Callable[["Planned", Outcome], None]


@dataclass(eq=False)
class Planned:
    """A trial ready to train: what its space gave and what it has trained so far."""

    trial: optuna.Trial
    config: TrialConfig
    seeds: list[int]
    size: Size
    epochs: int  # how long it trains: its config's epochs, or the study's max_epochs
    history: list[EpochMetrics] = field(default_factory=list)
    per_seed: list[list[EpochMetrics]] = field(default_factory=list)  # with repeats: each seed's epochs
    group: Group | None = None  # the runs it trains in (its seeds, and its pack-mates' where they fuse)
    members: list[int] = field(default_factory=list)  # its seeds' indices in ``group``
    settled: bool = False

    @property
    def number(self) -> int:
        return self.trial.number


@dataclass
class Objective:
    study: Study
    settings: StoredSettings
    data: SearchData
    device: torch.device
    on_epoch: EpochHook | None = None
    speedups: Speedups = Speedups()  # fusion and capture, resolved once by the CLI

    def __call__(self, trial: optuna.Trial) -> float | Sequence[float]:
        """The Optuna objective: one trial, trained alone."""
        outcome: list[Outcome] = []
        self.train([self.plan(trial)], lambda _, o: outcome.append(o))
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def plan(self, trial: optuna.Trial) -> Planned:
        """Everything before training: where it runs, its seeds, its config and size (a config over
        the study's limits is pruned here, before any step, by raising ``optuna.TrialPruned``)."""
        # where it runs, first: a trial out of GPU memory asks which others share its device (hpsearch.run.oom)
        records.put_attrs(trial, device=str(self.device), threads=torch.get_num_threads(),
                          worker=f"{socket.gethostname()}:{os.getpid()}")
        seeds = self.seeds(trial)
        config = self.study.space(trial)
        records.put_attrs(trial, seed=seeds[0])
        epochs = config.epochs_in(self.settings.max_epochs)  # over the study's maximum: this trial fails, saying so
        if len(seeds) > 1:
            records.put_attrs(trial, seeds=seeds)
        records.put(trial, records.CONFIG, config.to_dict())
        records.put_attrs(trial, model=config.model.name)
        try:
            size = measure(config.model, self.data.info)  # a throwaway CPU copy, no weights read
        except InfeasibleModel as err:
            records.put_attrs(trial, rejected=str(err))
            raise optuna.TrialPruned(f"rejected before training: {err}") from None
        records.put_attrs(trial, n_params=size.params, n_trainable=size.trainable, flops=size.flops)
        too_big = _over_limit(size, self.settings)
        if too_big:
            records.put_attrs(trial, rejected=too_big)
            raise optuna.TrialPruned(f"rejected before training: {too_big}")
        return Planned(trial, config, seeds, size, epochs, per_seed=[[] for _ in seeds])

    def seeds(self, trial: optuna.Trial) -> list[int]:
        """The training seeds of this trial: a grid's seed cell, or one per repeat."""
        grid_seeds = (self.settings.sampler.dimensions or {}).get(SEED_PARAM)
        if grid_seeds:  # a grid's seed dimension is the training seed itself (asked first: a recorded param)
            return [int(trial.suggest_categorical(SEED_PARAM, grid_seeds))]
        first = trial_seed(self.settings.seed, trial.number)  # what a study without repeats trains with
        return [first, *(derive_seed(self.settings.seed, "repeat", trial.number, i)
                         for i in range(1, self.settings.repeats))]

    def train(self, plans: list[Planned], settle: Settle) -> None:
        """Train the planned trials together, epoch by epoch, and ``settle`` each one as soon as its
        outcome is known (pruned, diverged, failed, or its value after the last epoch).

        Each trial's repeats — and, where fusion is wanted and shapes match, its pack-mates' runs —
        train as one model (:func:`hpsearch.train.fused.train_together`); trials that cannot fuse train in
        turn, an epoch each. After every epoch each trial reports the mean over its seeds, and the
        pruner judges it alone: a pruned trial stops while the others go on. An error in a group's
        step fails the trials of that group only. A ``KeyboardInterrupt`` propagates (the caller
        fails the trials not yet settled); their curves so far are recorded first.
        """
        if self.device.type == "cuda":  # what --workers auto packs by (workers.GPU_PEAK): this worker's peak
            torch.cuda.reset_peak_memory_stats(self.device)
        groups = self._groups(plans, settle)
        try:
            for _ in range(max((p.epochs for p in plans), default=0)):
                for g in range(len(groups)):  # by index: no loop variable may keep a failed group alive
                    live = [p for p in groups[g][1] if not p.settled]
                    if not live:
                        continue
                    try:
                        outcomes = groups[g][0].epoch()
                    except Exception as err:  # noqa: BLE001 - fails this group's trials, recorded with the cause
                        groups[g] = (Separate([]), [])  # its models and optimizer state go (an out-of-memory group)
                        for p in live:
                            p.group = None
                        for p in live:
                            self._end(p, err, settle)
                        continue
                    for p in live:
                        try:
                            self._after_epoch(p, outcomes)
                        except Exception as err:  # noqa: BLE001 - pruned, diverged, or its trial went stale
                            self._end(p, err, settle)
                for p in plans:
                    if not p.settled and len(p.history) >= p.epochs:  # its own epochs done: the others go on
                        self._finish(p, settle)
                if all(p.settled for p in plans):
                    return
            for p in plans:
                if not p.settled:
                    self._finish(p, settle)
        finally:
            for p in plans:
                if not p.settled:  # interrupted: what it trained is still evidence, if it can still be written
                    self._record(p)

    def _finish(self, p: Planned, settle: Settle) -> None:
        try:
            value: Outcome = self._value(p)
        except Exception as err:  # noqa: BLE001 - a metric it does not have: that trial's failure
            value = err
        self._end(p, value, settle)

    def _groups(self, plans: list[Planned], settle: Settle) -> list[tuple[Group, list[Planned]]]:
        """The plans as groups of runs: where fusion is wanted, plans whose configs can fuse share one
        (the first that fits); every other plan is a group of its own, so an error stays its own."""
        buckets: list[list[Planned]] = []
        pack = len(plans) > 1 and self.speedups.fuses(self.device)
        for p in plans:
            home = next((b for b in buckets if b[0].epochs == p.epochs  # one schedule: the same length
                         and why_not_fusable([b[0].config, p.config]) is None), None) if pack else None
            if home is None:
                buckets.append([p])
            else:
                home.append(p)
        groups: list[tuple[Group, list[Planned]]] = []
        for bucket in buckets:
            try:
                group = train_together([p.config for p in bucket for _ in p.seeds], self.data,
                                       epochs=bucket[0].epochs, seeds=[s for p in bucket for s in p.seeds],
                                       device=self.device, task=self.settings.task, speedups=self.speedups)
            except Exception as err:  # noqa: BLE001 - a config that cannot be built fails its own trial
                if len(bucket) == 1:
                    self._end(bucket[0], err, settle)
                else:  # build them one by one, so the error lands on the trial it belongs to
                    groups += self._groups_alone(bucket, settle)
                continue
            if len(bucket) > 1 and not group.fused:  # the probe found an op vmap cannot batch
                groups += self._groups_alone(bucket, settle)
                continue
            start = 0
            for p in bucket:
                p.group, p.members = group, list(range(start, start + len(p.seeds)))
                start += len(p.seeds)
                if group.fused and len(p.seeds) > 1:  # its own repeats trained as one model
                    records.put_attrs(p.trial, fused=len(p.seeds))
                if group.fused and len(bucket) > 1:  # ... with other trials' runs
                    records.put_attrs(p.trial, fused_with=[q.number for q in bucket if q is not p])
            groups.append((group, bucket))
        return groups

    def _groups_alone(self, bucket: list[Planned], settle: Settle) -> list[tuple[Group, list[Planned]]]:
        out: list[tuple[Group, list[Planned]]] = []
        for p in bucket:
            out += self._groups([p], settle)
        return out

    def _after_epoch(self, p: Planned, outcomes: dict[int, EpochMetrics | Diverged]) -> None:
        """Record trial ``p``'s epoch (its seeds' mean), report it, and raise if it ends here."""
        mine = [outcomes[i] for i in p.members if i in outcomes]
        diverged = next((o for o in mine if isinstance(o, Diverged)), None)
        if diverged is not None:
            records.put_attrs(p.trial, diverged_at_epoch=diverged.epoch)
            raise optuna.TrialPruned(str(diverged))
        each = [o for o in mine if isinstance(o, EpochMetrics)]
        metric = self.settings.metric
        for runs, m in zip(p.per_seed, each):
            runs.append(m)
        m = mean_metrics(each)
        p.history.append(m)
        if not self.settings.multi:
            p.trial.report(getattr(m, metric), m.epoch)
        if self.on_epoch is not None:
            self.on_epoch(p.number, m)
        if not self.settings.multi and p.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {m.epoch}")

    def _value(self, p: Planned) -> float | list[float]:
        metric = self.settings.metric
        if not self.settings.multi:
            return float(getattr(p.history[-1], metric))
        attrs = {"n_params": p.size.params, "flops": p.size.flops, "seconds": self._seconds(p)}
        return [float(attrs[COST_ATTRS[name]]) if name in COST_ATTRS else float(getattr(p.history[-1], name))
                for name in self.settings.objectives]

    @staticmethod
    def _seconds(p: Planned) -> float:
        """Its runs' training and validation time (a fused run's: its share of the fused pass)."""
        return sum(p.group.members[i].seconds for i in p.members) if p.group is not None else 0.0

    def _write(self, p: Planned, seconds: float | None) -> None:
        """Its evidence: curves, the worker's peak GPU memory so far, and its seconds if it finished."""
        _record_curves(p.trial, p.history, p.per_seed if len(p.seeds) > 1 else None, self.settings.metric,
                       self.settings.direction == "maximize")
        if self.device.type == "cuda":
            records.put_attrs(p.trial, gpu_peak_bytes=torch.cuda.max_memory_allocated(self.device))
        if seconds is not None:
            records.put_attrs(p.trial, seconds=round(seconds, 3))

    def _record(self, p: Planned) -> None:
        """:meth:`_write` for an interrupted trial, if it can still be written (the caller fails it)."""
        with contextlib.suppress(Exception):
            self._write(p, None)

    def _end(self, p: Planned, outcome: Outcome, settle: Settle) -> None:
        """Trial ``p`` trains no further: record its evidence, stop its runs, and settle it.

        A write that fails here (the trial was failed as stale by another worker: Optuna's
        ``UpdateFinishedTrialError``) becomes the trial's outcome, so ``settle`` sees it.
        """
        p.settled = True
        seconds = self._seconds(p)
        if p.group is not None:
            for i in p.members:
                p.group.stop(i)
        p.group = None
        try:
            self._write(p, None if isinstance(outcome, BaseException) else seconds)
        except Exception as err:  # noqa: BLE001 - see the docstring
            if not isinstance(outcome, optuna.exceptions.UpdateFinishedTrialError):
                outcome = err
        settle(p, outcome)


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


def _record_curves(trial: optuna.Trial, history: list[EpochMetrics], per_seed: list[list[EpochMetrics]] | None,
                   metric: str, maximize: bool) -> None:
    """Every metric's curve, train and validation, per epoch (the seeds' mean with repeats), and
    the epoch the study metric was best; with repeats also each seed's curve of every metric, so a
    report can show the spread behind the mean (``repeat_values``: each seed's last study metric)."""
    if not history:
        return
    curves = curves_of(history)
    records.put(trial, records.CURVES, curves)
    best = records.best_epoch(curves.get(metric) or [], maximize)
    records.put_attrs(trial, epochs=len(history))
    if best is not None:
        records.put_attrs(trial, best_epoch=best)
    if per_seed is not None:
        each = [curves_of(runs) for runs in per_seed if runs]
        records.put(trial, records.REPEAT_CURVES, {name: [c[name] for c in each] for name in curves})
        records.put_attrs(trial, repeat_values=[float(getattr(runs[-1], metric)) for runs in per_seed if runs])
