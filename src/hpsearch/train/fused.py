"""Several runs of one architecture trained as one model (HFTA's idea, with ``torch.func``).

K runs of the same shape — the seeds of a retrain, the repeats of a trial, variants that differ
only in learning rate or weight decay — each keep what makes them a run of their own: a real
``nn.Module`` initialised exactly as :class:`~hpsearch.train.loop.Training` initialises it (same
``torch.manual_seed(seed)`` before ``build``), its own optimizer and schedule over its own
parameters (so lr, weight decay and optimizer state are exactly its own), and its own
``torch.Generator`` for shuffling and augmentation. Only the arithmetic is shared: every step
stacks each parameter across the members (``torch.stack``, differentiable, so each member's
gradient lands on its own leaves), runs the template module under ``torch.func.vmap`` — a conv
with batched weights becomes one grouped convolution, a linear layer one batched matmul — sums
the members' losses and does one backward. Each member then takes its own optimizer and
scheduler step, and is validated on its own module with the task's own ``evaluate``.

So a fused run's curve equals the separate run's within float tolerance (the grouped kernels
add up in another order), which ``tests/train/test_fused.py`` checks curve for curve. One exception:
**dropout**. Under ``vmap(randomness="different")`` every member draws its own mask, but from
the group's stream, not from the stream a separate run would use; so a member with dropout is
a valid run of its seed, independent of the others, yet not bit-for-bit the separate run, and
its masks change if the group's membership changes (a member pruned).

Members stop independently (:meth:`Group.stop`; a pruned trial's seed, a finished variant), and
a member whose loss is not finite is dropped with :class:`~hpsearch.train.loop.Diverged` as its
outcome while the others go on. When the members cannot fuse — different architecture or batch
size, a spec with per-epoch behaviour (``on_epoch``: freezing stages of a backbone), or an op
``vmap`` cannot batch (found by one probing step on two images) — :func:`train_together` gives
a :class:`Separate` group instead: the same interface over plain ``Training`` runs stepped in turn.

Training code: knows nothing about Optuna, like :mod:`hpsearch.train.loop`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from hpsearch.data import SearchData
from hpsearch.models import ModelSpec
from hpsearch.study.config import TrialConfig
from hpsearch.tasks import Task, classify
from hpsearch.train.capture import Captured
from hpsearch.train.loop import Diverged, EpochMetrics, FitResult, Training
from hpsearch.train.options import Speedups

__all__ = ["Fused", "Group", "Outcome", "Separate", "fit_together", "train_together",
           "why_not_fusable"]

Outcome = EpochMetrics | Diverged  # what one member's epoch gave


class Group:
    """K runs advanced an epoch at a time, fused or not; callers do not need to know which.

    ``members[i]`` is run i's :class:`Training` (its model, optimizer, history). :meth:`epoch`
    trains every active member one epoch and returns each one's outcome by index; a member that
    diverged is dropped by the group itself, one that the caller is done with by :meth:`stop`.
    """

    fused: bool = False
    reason: str | None = None  # why the members were not fused (None when they are, or fusion was off)

    def __init__(self, members: list[Training]) -> None:
        self.members = members
        self.active: list[int] = list(range(len(members)))

    def epoch(self) -> dict[int, Outcome]:
        raise NotImplementedError

    def stop(self, i: int) -> None:
        """Train member ``i`` no further (its history and model stay as they are)."""
        if i in self.active:
            self.active.remove(i)

    def result(self, i: int) -> FitResult:
        return self.members[i].result()

    @property
    def seconds(self) -> float:
        """Wall time spent training and validating, all members together."""
        return sum(m.seconds for m in self.members)


class Separate(Group):
    """The fallback: each member a plain :class:`Training`, stepped one after another."""

    def __init__(self, members: list[Training], reason: str | None = None) -> None:
        super().__init__(members)
        self.reason = reason

    def epoch(self) -> dict[int, Outcome]:
        out: dict[int, Outcome] = {}
        for i in list(self.active):
            try:
                out[i] = self.members[i].epoch()
            except Diverged as err:
                out[i] = err
                self.stop(i)
        return out


class Fused(Group):
    """The members' training passes run as one vmapped model; see the module docstring."""

    fused = True

    def __init__(self, members: list[Training]) -> None:
        super().__init__(members)
        first = members[0]
        self.device, self.data, self.task = first.device, first.data, first.task
        self.template = copy.deepcopy(first.model)  # whose code runs; its own tensors are never used
        self.param_names = [n for n, _ in first.model.named_parameters()]
        self.buffer_names = [n for n, _ in first.model.named_buffers()]
        # each member's tensors in name order, looked up once (stacked every step)
        self._member_params = [[p for _, p in m.model.named_parameters()] for m in members]
        self._member_buffers = [[b for _, b in m.model.named_buffers()] for m in members]
        # dropout under vmap draws from the global RNG: the group keeps its own stream, seeded
        # from the members' seeds (set by the last Training built), so a fused run reproduces
        self._rng = torch.get_rng_state()
        self._cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        self.step_forward = Captured(self._forward, members[0].speedups.captures(self.device))  # CUDA graphs if asked

    # -- the fused step -------------------------------------------------------------------

    def _params(self, active: Sequence[int]) -> dict[str, torch.Tensor]:
        per = [self._member_params[i] for i in active]
        return {n: torch.stack([p[j] for p in per]) for j, n in enumerate(self.param_names)}

    def _buffers(self, active: Sequence[int]) -> dict[str, torch.Tensor]:
        per = [self._member_buffers[i] for i in active]
        return {n: torch.stack([b[j] for b in per]) for j, n in enumerate(self.buffer_names)}

    def _forward(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 x: torch.Tensor) -> torch.Tensor:
        """Every member's output for its own batch: ``x`` is K×B×…, the result K×B×…."""
        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (p, b), (xb,))
        return vmap(one, randomness="different")(params, buffers, x)

    def probe(self) -> None:
        """One forward and backward on two images per member, on copies: raises if ``vmap``
        cannot batch the model. Changes no weights, buffers or random streams."""
        active = self.active
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            params = {n: t.detach().clone().requires_grad_(t.requires_grad) for n, t in self._params(active).items()}
            buffers = {n: t.clone() for n, t in self._buffers(active).items()}
            rows = torch.arange(min(2, len(self.data.train)), device=self.device)
            x = self.data.train.batch(rows).contiguous(memory_format=self.members[0].fmt)
            xs = torch.stack([x] * len(active))
            self.template.train()
            out = self._forward(params, buffers, xs)
            y = self.data.train.y[rows]
            loss = sum(self.task.loss(out[k], x, y, self.data.train) for k in range(len(active)))
            grads = [t for t in params.values() if t.requires_grad]
            if grads:
                torch.autograd.grad(loss, grads, allow_unused=True)  # type: ignore[arg-type]

    def epoch(self) -> dict[int, Outcome]:
        active = list(self.active)
        if not active:
            return {}
        members = [self.members[i] for i in active]
        first = members[0]
        epoch = len(first.history) + 1
        for m in members:
            if len(m.history) + 1 != epoch or epoch > m.epochs:
                raise RuntimeError("fused members must be at the same epoch and within their planned epochs")
        torch.set_rng_state(self._rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state(self._cuda_rng, self.device)
        t0 = time.perf_counter()
        data, task, device, bs, k = self.data, self.task, self.device, first.bs, len(members)
        self.template.train()
        for m in members:
            m.model.train()
            m.config.model.on_epoch(m.model, epoch)  # the default, a no-op: specs that override it never fuse
        orders = [torch.randperm(m.n, generator=m.gen, device=device) for m in members]
        buffers = self._buffers(active)  # updated in place under vmap (BN running stats), copied back below
        loss_sums = torch.zeros(k, device=device)
        counts = {name: torch.zeros(k, device=device) for name in task.TRAIN_METRICS}
        for s in range(first.steps):
            xs, ys = [], []
            for m, order in zip(members, orders):
                idx = order[s * bs:(s + 1) * bs]
                x = data.train.batch(idx)
                if m.augment is not None:
                    x = m.augment(x, m.gen)
                xs.append(x.contiguous(memory_format=m.fmt))
                ys.append(data.train.y[idx])
            out = self.step_forward(self._params(active), buffers, torch.stack(xs))
            losses = []
            for j in range(k):
                if epoch == 1 and s == 0:
                    task.check_output(out[j], xs[j], ys[j])
                losses.append(task.loss(out[j], xs[j], ys[j], data.train))
                for name, v in task.train_counts(out[j], xs[j], ys[j]).items():
                    counts.setdefault(name, torch.zeros(k, device=device))[j] += v
            for m in members:
                m.opt.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            for m in members:
                m.opt.step()
                if m.sched is not None:
                    m.sched.step()
            loss_sums += torch.stack(losses).detach()
        totals = torch.stack([loss_sums, *counts.values()]).tolist()  # the one host sync of the epoch
        self._rng = torch.get_rng_state()
        if self._cuda_rng is not None:
            self._cuda_rng = torch.cuda.get_rng_state(device)
        with torch.no_grad():
            for j, i in enumerate(active):
                for name, b in zip(self.buffer_names, self._member_buffers[i]):
                    b.copy_(buffers[name][j])
        share = (time.perf_counter() - t0) / k  # a member's seconds: its share of the fused pass
        out_: dict[int, Outcome] = {}
        for j, (i, m) in enumerate(zip(active, members)):
            try:
                out_[i] = m.close_epoch(epoch, totals[0][j], {n: totals[1 + c][j] for c, n in enumerate(counts)},
                                        share)
            except Diverged as err:
                out_[i] = err
                self.stop(i)
        return out_


def _spec_key(spec: ModelSpec) -> dict[str, object]:
    d = spec.to_dict()
    d.pop("init_seed", None)  # only decides the initial weights, which each member has its own of
    return d


def why_not_fusable(configs: Sequence[TrialConfig]) -> str | None:
    """Why these configs cannot train as one model, by rule (before anything is built); None if they can."""
    if len(configs) < 2:
        return "a single run"
    first = configs[0]
    if any(_spec_key(c.model) != _spec_key(first.model) for c in configs[1:]):
        return "the members' models differ"
    if any(c.batch_size != first.batch_size for c in configs[1:]):
        return "the members' batch sizes differ"
    if type(first.model).on_epoch is not ModelSpec.on_epoch:
        return f"model {type(first.model).name!r} changes from epoch to epoch (on_epoch)"
    return None


def _shapes_differ(members: list[Training]) -> str | None:
    def shapes(m: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, bool]]:
        return ([(n, tuple(t.shape), t.dtype, t.requires_grad) for n, t in m.named_parameters()]
                + [(n, tuple(t.shape), t.dtype, False) for n, t in m.named_buffers()])
    first = shapes(members[0].model)
    if any(shapes(m.model) != first for m in members[1:]):
        return "the members' parameters differ in shape"
    if not any(p.requires_grad for p in members[0].model.parameters()):
        return "the model has nothing to train"
    if any(not p.requires_grad for p in members[0].model.parameters()):
        return "the model has frozen parameters"
    return None


def train_together(configs: Sequence[TrialConfig], data: SearchData, *, epochs: int, seeds: Sequence[int],
                   device: torch.device, task: Task | None = None, speedups: Speedups = Speedups()) -> Group:
    """The runs ``configs[i]`` × ``seeds[i]``, fused when they can be and ``speedups`` fuse on
    ``device``; else the same runs stepped in turn.

    Each member is built by :class:`Training` itself, so its initial weights, optimizer and
    random streams are the separate run's.
    """
    if len(configs) != len(seeds) or not configs:
        raise ValueError(f"train_together needs one seed per config, got {len(configs)} configs and {len(seeds)} seeds")
    task = task or classify()
    members = [Training(c, data, epochs=epochs, seed=s, device=device, task=task, speedups=speedups)
               for c, s in zip(configs, seeds)]
    if not speedups.fuses(device):
        return Separate(members)
    reason = why_not_fusable(configs) or _shapes_differ(members)
    if reason is None:
        group = Fused(members)
        try:
            group.probe()
        except Exception as err:  # noqa: BLE001 - any op vmap cannot batch: train them one by one instead
            reason = f"vmap cannot batch this model ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
        else:
            return group
    return Separate(members, reason)


def fit_together(configs: Sequence[TrialConfig], data: SearchData, *, epochs: int, seeds: Sequence[int],
                 device: torch.device, task: Task | None = None, speedups: Speedups = Speedups(),
                 report: Callable[[int, EpochMetrics], None] | None = None) -> list[FitResult]:
    """:func:`~hpsearch.train.loop.fit` for several runs at once: ``report(i, metrics)`` after every
    epoch of member i (epoch by epoch, members in order). A member that diverges raises
    :class:`Diverged` once the others have finished (as its own ``fit`` would have)."""
    t0 = time.perf_counter()
    group = train_together(configs, data, epochs=epochs, seeds=seeds, device=device, task=task, speedups=speedups)
    diverged: Diverged | None = None
    for _ in range(epochs):
        for i, outcome in group.epoch().items():
            if isinstance(outcome, Diverged):
                diverged = diverged or outcome
            elif report is not None:
                report(i, outcome)
    if diverged is not None:
        raise diverged
    results = [group.result(i) for i in range(len(configs))]
    wall = time.perf_counter() - t0
    if group.fused:
        for r in results:  # each run's share of the wall time (fused runs ran at once)
            r.seconds, r.fused = wall / len(results), True
    return results
