"""Samplers as a study setting: ``Study(sampler=samplers.grid({...}))``, stored with the study.

Every worker on every machine builds its sampler from what the study stored, so a study is
searched one way however it is joined. TPE stays the default (the 0.1 behaviour: independent
TPE, constant liar so parallel workers do not pile onto one point).

:func:`grid` is not Optuna's ``GridSampler``: that one picks cells at random per process
(parallel workers repeat cells) and calls ``study.stop()`` when done, which only works
inside ``optimize()``. Here the worker hands out cells itself, under the same cross-process
lock as the budget (:func:`next_cell`), so across all workers and machines each cell runs
exactly once, and a rerun fills only the cells that are missing or failed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

SamplerBuilder = Callable[[dict[str, Any], int, int], "optuna.samplers.BaseSampler"]  # (options, seed, n_trials)
_BUILDERS: dict[str, SamplerBuilder] = {}
_FIXED_PARAMS = "fixed_params"  # Optuna's own system attribute: what enqueue_trial fixed (not ours to declare)
CELL = "hpsearch:cell"  # the grid cell a trial was handed (a user attribute, kept on retries)
SEED_PARAM = "seed"  # a grid dimension of this name sets the trial's training seed


@dataclass(frozen=True)
class SamplerSpec:
    """Which sampler, with its options; what the study stores (``to_dict``)."""

    kind: str = "tpe"
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """A kind nothing registered is an error (a stored one is checked when it is built, once
        the study module that registers it has been imported)."""
        if self.kind not in _BUILDERS:
            raise ValueError(f"unknown sampler {self.kind!r}; choose from {', '.join(registered())} "
                             "(or register your own with @samplers.register_sampler)")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.options}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SamplerSpec:
        """A stored spec; studies made before samplers were a setting (None) used TPE."""
        if not d:
            return cls()
        d = dict(d)
        return cls(d.pop("kind"), d)

    @property
    def dimensions(self) -> dict[str, list[Any]] | None:
        """A grid's dimensions (name → values), or None for every other sampler."""
        return self.options["cells"] if self.kind == "grid" else None

    def cells(self) -> list[dict[str, Any]]:
        """Every grid cell, in the order the dimensions and values were written (or the cells were listed)."""
        if self.kind == "grid" and self.options.get("listed"):
            return [dict(c) for c in self.options["listed"]]
        dims = self.dimensions or {}
        return [dict(zip(dims, values)) for values in itertools.product(*dims.values())]

    def build(self, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler for one worker; ``seed`` differs per worker (TPE, random) or is
        the study's (QMC, whose points must be one sequence across workers)."""
        self.check()
        return _BUILDERS[self.kind](dict(self.options), seed, n_trials)


def register_sampler(kind: str) -> Callable[[SamplerBuilder], SamplerBuilder]:
    """Register ``builder(options, seed, n_trials) -> optuna sampler`` under ``kind``; a study then
    declares ``Study(sampler=SamplerSpec(kind, options))`` and stores it by kind and options."""
    def add(builder: SamplerBuilder) -> SamplerBuilder:
        _BUILDERS[kind] = builder
        return builder
    return add


def registered() -> list[str]:
    return list(_BUILDERS)


@register_sampler("tpe")
def _tpe(o: dict[str, Any], seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    import optuna

    startup = o.get("n_startup_trials") or min(10, max(3, n_trials // 4))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True,
                                      multivariate=o.get("multivariate", False), group=o.get("group", False))


@register_sampler("grid")  # a grid's cells are handed out under the budget lock; within a cell, nothing to sample
@register_sampler("random")
def _random(o: dict[str, Any], seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@register_sampler("qmc")
def _qmc(o: dict[str, Any], seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.QMCSampler(qmc_type=o.get("qmc_type", "sobol"), scramble=True,
                                      seed=o.get("seed", 0), warn_independent_sampling=False)


@register_sampler("cmaes")
def _cmaes(o: dict[str, Any], seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=o.get("n_startup_trials", 1),
                                        warn_independent_sampling=False)


@register_sampler("nsga2")
def _nsga2(o: dict[str, Any], seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=o.get("population_size", 50))


def tpe(*, multivariate: bool = False, group: bool = False, n_startup_trials: int | None = None) -> SamplerSpec:
    """Optuna's TPE (the default). ``multivariate`` models parameters jointly; ``group``
    (with it) splits conditional spaces; ``n_startup_trials`` random trials first (default:
    a quarter of the budget, between 3 and 10)."""
    return SamplerSpec("tpe", {"multivariate": multivariate, "group": group, "n_startup_trials": n_startup_trials})


def random() -> SamplerSpec:
    """Independent uniform sampling: the baseline every other sampler should beat."""
    return SamplerSpec("random")


def qmc(qmc_type: str = "sobol", seed: int = 0) -> SamplerSpec:
    """A scrambled Sobol (or ``"halton"``) sequence: covers the space more evenly than random."""
    return SamplerSpec("qmc", {"qmc_type": qmc_type, "seed": seed})


def cmaes(n_startup_trials: int = 1) -> SamplerSpec:
    """CMA-ES over the numeric parameters (categoricals are sampled at random); needs ``cmaes``."""
    return SamplerSpec("cmaes", {"n_startup_trials": n_startup_trials})


def nsga2(population_size: int = 50) -> SamplerSpec:
    """NSGA-II, the genetic algorithm Optuna uses for several objectives at once."""
    return SamplerSpec("nsga2", {"population_size": population_size})


def grid(dimensions: Mapping[str, Sequence[Any]] | Sequence[dict[str, Any]]) -> SamplerSpec:
    """Every combination of ``dimensions`` exactly once, across all workers and machines; or, given
    a list of cells, exactly those (unequal repeats per variant: 3 seeds of one, 1 of another).

    The space function reads a cell with the usual ``trial.suggest_categorical(name, values)``
    calls. A dimension named ``"seed"`` sets each trial's training seed instead (hpsearch asks
    it; the space function need not), so ``{"variant": [...], "seed": [0, 1, 2, 3, 4]}`` is a
    ladder of variants, each over five seeds, as one study of independent trials;
    ``[{"variant": "base", "seed": 0}, {"variant": "base", "seed": 1}, {"variant": "+bn", "seed": 0}]``
    runs those three cells only.
    """
    if isinstance(dimensions, Sequence) and not isinstance(dimensions, (str, bytes)):
        return _listed(list(dimensions))
    if not dimensions:
        raise ValueError("grid needs at least one dimension, e.g. grid({'lr': [0.1, 0.01]})")
    cells: dict[str, list[Any]] = {}
    for name, values in dimensions.items():
        values = list(values)
        if not values:
            raise ValueError(f"grid dimension {name!r} has no values")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ValueError(f"grid dimension {name!r} repeats a value: {values}")
        for v in values:
            if not isinstance(v, (str, int, float, bool)) and v is not None:
                raise ValueError(f"grid dimension {name!r}: {v!r} is not a str, int, float, bool or None "
                                 "(name the variant with a string and map it to a config in the space)")
        if name == SEED_PARAM and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ValueError(f"grid dimension 'seed' must hold integers, got {values}")
        cells[str(name)] = values
    return SamplerSpec("grid", {"cells": cells})


def _listed(listed: list[dict[str, Any]]) -> SamplerSpec:
    """A grid of the given cells: each a dict of the same names, no cell twice."""
    if not listed:
        raise ValueError("grid needs at least one cell, e.g. grid([{'variant': 'base', 'seed': 0}])")
    if not all(isinstance(c, dict) and c for c in listed):
        raise ValueError("grid cells must be non-empty dicts of name → value, e.g. {'variant': 'base', 'seed': 0}")
    names = list(listed[0])
    odd = next((c for c in listed if set(c) != set(names)), None)
    if odd is not None:
        raise ValueError(f"every grid cell needs the same names ({', '.join(names)}); {odd} does not have them")
    values: dict[str, list[Any]] = {n: [] for n in names}
    for c in listed:
        for n in names:
            if c[n] not in values[n]:
                values[n].append(c[n])
    seen: set[str] = set()
    for c in listed:
        key = json.dumps([c[n] for n in names], sort_keys=True)
        if key in seen:
            raise ValueError(f"grid cell {c} is listed twice; each cell runs exactly once (give it another seed)")
        seen.add(key)
    dims = grid(values).options["cells"]  # each name's values checked as a dimension's
    return SamplerSpec("grid", {"cells": dims, "listed": [{n: c[n] for n in names} for c in listed]})


def cell_of(trial: FrozenTrial, names: Sequence[str]) -> tuple[str, ...] | None:
    """The grid cell a trial holds (None if it was never handed one): from the cell it was
    given, else from its parameters (a trial re-queued by a stale-trial retry keeps both)."""
    given = trial.user_attrs.get(CELL)
    params = given if isinstance(given, dict) else {**trial.system_attrs.get(_FIXED_PARAMS, {}), **trial.params}
    if not all(n in params for n in names):
        return None
    return tuple(json.dumps(params[n], sort_keys=True) for n in names)


def next_cell(spec: SamplerSpec, trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
    """The first cell no trial holds: none COMPLETE, PRUNED, RUNNING or WAITING with it
    (a FAILED cell is free again). Call it under the budget lock."""
    from optuna.trial import TrialState

    names = list(spec.dimensions or {})
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    taken = {cell_of(t, names) for t in trials if t.state in live}
    for cell in spec.cells():
        if tuple(json.dumps(cell[n], sort_keys=True) for n in names) not in taken:
            return cell
    return None


def check_grid(spec: SamplerSpec, space: Any) -> None:
    """Refuse a grid the space function cannot read, before any trial: a dimension it never
    asks (a typo would run every cell with the same config), or a value outside what it asks.

    Each cell is handed to the space function as a run would hand it (an enqueued trial of a
    throwaway in-memory study), so parameters outside the grid are sampled as they will be.
    """
    import warnings

    import optuna

    dims = {n: v for n, v in (spec.dimensions or {}).items() if n != SEED_PARAM}
    if not dims:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for cell in spec.cells():
            scratch.enqueue_trial({n: cell[n] for n in dims})
            trial = scratch.ask()
            try:
                space(trial)
            except ValueError as err:  # Optuna: a fixed value outside the suggest call's choices
                raise ValueError(f"grid cell {cell} is outside what the space function asks ({err}); make the "
                                 "grid's values and the suggest calls' agree") from None
            never = [n for n in dims if n not in trial.distributions]
            if never:
                raise ValueError(f"grid dimension {never[0]!r} is never asked by the space function; read it with "
                                 f"trial.suggest_categorical({never[0]!r}, {dims[never[0]]!r})")
            for n in dims:
                dist = trial.distributions[n]
                try:
                    inside = dist._contains(dist.to_internal_repr(cell[n]))
                except (ValueError, TypeError):
                    inside = False
                if not inside:
                    raise ValueError(f"grid value {n}={cell[n]!r} is outside what the space function asks "
                                     f"({dist}); make the grid's values and the suggest call's agree")
            scratch.tell(trial, 0.0)
