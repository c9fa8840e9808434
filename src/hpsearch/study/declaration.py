"""The declaration a study module makes: ``study = Study(dataset=..., space=..., ...)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna

from hpsearch.data import DatasetInfo, DataSpec, Source
from hpsearch.study.config import TrialConfig
from hpsearch.study.samplers import SEED_PARAM, SamplerSpec
from hpsearch.tasks import Task, classify
from hpsearch.tasks import from_dict as task_from_dict

Direction = Literal["maximize", "minimize"]

METRICS: dict[str, Direction] = classify().directions()  # the classify task's (what 0.3 had); see hpsearch.tasks
# What a trial costs, known once it has run: further objectives of a multi-objective study.
COSTS: dict[str, Direction] = {
    "params": "minimize",  # parameter count
    "flops": "minimize",  # forward FLOPs per image
    "seconds": "minimize",  # training wall time of the trial
}
COST_ATTRS = {"params": "n_params", "flops": "flops", "seconds": "seconds"}  # the trial attribute each reads
MAX_REPEATS = 20


def check_objectives(metric: str, metrics: tuple[str, ...] | None, repeats: int, task: Task | None = None) -> None:
    """One clear line for a metric, objective list or repeat count hpsearch cannot optimise
    (the metrics are the task's: ``val_psnr`` is a reconstruct metric, not a classify one)."""
    task = task or classify()
    METRICS = task.directions()  # noqa: N806 - the same name as the module's, for this task
    if metrics is not None:
        if len(metrics) < 2 or metrics[0] not in METRICS:
            raise ValueError(f"metrics must name 2 or more objectives, a validation metric first "
                             f"({', '.join(METRICS)}), e.g. (\"val_top1\", \"params\"); got {metrics!r}")
        unknown = [m for m in metrics[1:] if m not in METRICS and m not in COSTS]
        if unknown or len(set(metrics)) != len(metrics):
            raise ValueError(f"metrics must be distinct names from {', '.join([*METRICS, *COSTS])}; got {metrics!r}")
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not a {task.kind} metric; use one of {', '.join(METRICS)}")
    if not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(f"repeats must be between 1 and {MAX_REPEATS}, got {repeats}")


@dataclass(frozen=True)
class Study:
    """What to search: a dataset, a space over configs, the metric, and a training budget.

    ``space`` receives the Optuna trial (or a ``FixedTrial``) and returns a
    :class:`TrialConfig`; the trainer never sees the trial itself.
    """

    dataset: str | Source  # a built-in name, or an object from hpsearch.data.datasets
    space: Callable[[optuna.Trial], TrialConfig]
    max_epochs: int = 10  # epochs per trial; the pruner may stop a trial earlier
    metric: str | None = None  # the validation metric the search optimises; None: the task's default (val_top1 for classify)
    n_trials: int = 20  # default for `hpsearch run --n-trials`
    val_fraction: float = 0.2  # of the official training split, stratified
    split_seed: int = 0  # fixes which images are validation images
    train_subset: int | None = None  # train on at most this many images (quick searches)
    description: str = ""
    max_params: int | None = None  # configs with more parameters are rejected before training
    max_flops: int | None = None  # the same for forward FLOPs per image
    sampler: SamplerSpec | None = None  # hpsearch.study.samplers.*; None: TPE (NSGA-II with several metrics)
    # Several objectives, a validation metric first: ("val_top1", "params") searches the
    # accuracy/size trade-off and `best` lists the Pareto front. ``metric`` is then metrics[0].
    metrics: tuple[str, ...] | None = None
    # Train each sampled config with this many seeds; its score is the mean (pruned on the running mean).
    repeats: int = 1
    task: Task = field(default_factory=classify)  # hpsearch.tasks: classify(), reconstruct(), segment()

    def __post_init__(self) -> None:
        if not isinstance(self.task, Task):
            raise ValueError("task must come from hpsearch.tasks (classify(), reconstruct(loss=\"mse\"), "
                             f"segment()), got {type(self.task).__name__}")
        if self.sampler is not None and not isinstance(self.sampler, SamplerSpec):
            raise ValueError("sampler must come from hpsearch.samplers (tpe(), random(), qmc(), cmaes(), "
                             f"nsga2(), grid({{...}})), got {type(self.sampler).__name__}")
        if self.sampler is not None:
            self.sampler.check()
        if not callable(self.space):
            raise ValueError("space must be a function of the Optuna trial returning a TrialConfig")
        if self.metrics is not None:
            object.__setattr__(self, "metrics", tuple(self.metrics))
            if self.metric not in (None, "val_top1", self.metrics[0]):
                raise ValueError(f"metric {self.metric!r} and metrics {self.metrics!r} disagree; "
                                 "give metrics only (its first entry is the metric)")
            object.__setattr__(self, "metric", self.metrics[0])
        metric = self.task.default_metric if self.metric is None else self.metric
        object.__setattr__(self, "metric", metric)
        check_objectives(metric, self.metrics, self.repeats, self.task)
        if self.repeats > 1 and self.sampler is not None and SEED_PARAM in (self.sampler.dimensions or {}):
            raise ValueError("a grid with a 'seed' dimension already repeats each cell over seeds; "
                             "leave repeats at 1")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        for limit in ("max_params", "max_flops"):
            if getattr(self, limit) is not None and getattr(self, limit) < 1:
                raise ValueError(f"{limit} must be >= 1 (or None for no limit), got {getattr(self, limit)}")
        self.task.check_source(self.data.source)  # validates dataset name, fractions; masks for segment

    @property
    def direction(self) -> Direction:
        return self.task.directions()[self.metric]  # type: ignore[index]

    @property
    def data(self) -> DataSpec:
        return DataSpec(self.dataset, self.val_fraction, self.split_seed, self.train_subset)

    @property
    def info(self) -> DatasetInfo:
        return self.data.info

    @property
    def sampler_spec(self) -> SamplerSpec:
        return self.sampler or SamplerSpec("nsga2" if self.metrics else "tpe")

    def config_for(self, params: dict[str, Any]) -> TrialConfig:
        """Rebuild the config a trial with these params trained (no Optuna study needed)."""
        return self.space(optuna.trial.FixedTrial(params))  # type: ignore[arg-type]


@dataclass(frozen=True)
class StoredSettings:
    """The parts of a :class:`Study` recorded in the database when the study is created.

    Retrain, reports and joining workers read these, so they agree with the search even if
    the module was edited (or is absent) later.
    """

    data: DataSpec
    max_epochs: int
    metric: str
    seed: int
    module: str  # the study module's name (its file's stem)
    module_path: str | None = None  # where it was when the study was created (None before 0.2)
    max_params: int | None = None
    max_flops: int | None = None
    data_hash: str | None = None  # of the dataset's files when the study was created (None: not tracked)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)  # studies made before 0.3 used TPE
    metrics: tuple[str, ...] | None = None  # several objectives (None: the one metric; all studies before 0.3)
    repeats: int = 1  # seeds per trial (1 before 0.3)
    task: Task = field(default_factory=classify)  # what the models learn (classify before 0.4)
    train_digest: str | None = None  # of the decoded training split (data.seal_of): a changed cache is never trained on

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.data.stored(), "val_fraction": self.data.val_fraction,
            "split_seed": self.data.split_seed, "train_subset": self.data.train_subset,
            "max_epochs": self.max_epochs, "metric": self.metric, "seed": self.seed,
            "module": self.module, "module_path": self.module_path,
            "max_params": self.max_params, "max_flops": self.max_flops, "data_hash": self.data_hash,
            "sampler": self.sampler.to_dict(),
            "metrics": list(self.metrics) if self.metrics else None, "repeats": self.repeats,
            "task": self.task.to_dict(), "train_digest": self.train_digest,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoredSettings:
        """Settings as stored; keys added since 0.1 default to what 0.1 did (no limits, no hash)."""
        return cls(
            data=DataSpec(DataSpec.restore(d["dataset"]), d["val_fraction"], d["split_seed"], d["train_subset"]),
            max_epochs=int(d["max_epochs"]), metric=d["metric"], seed=int(d["seed"]),
            module=d["module"], module_path=d.get("module_path"),
            max_params=d.get("max_params"), max_flops=d.get("max_flops"), data_hash=d.get("data_hash"),
            sampler=SamplerSpec.from_dict(d.get("sampler")),
            metrics=tuple(d["metrics"]) if d.get("metrics") else None, repeats=int(d.get("repeats") or 1),
            task=task_from_dict(d.get("task")), train_digest=d.get("train_digest"),
        )

    @classmethod
    def of(cls, study: Study, seed: int, module: str, module_path: str | None = None,
           data_hash: str | None = None, sampler: SamplerSpec | None = None,
           train_digest: str | None = None) -> StoredSettings:
        return cls(study.data, study.max_epochs, study.metric, seed, module, module_path,  # type: ignore[arg-type]
                   study.max_params, study.max_flops, data_hash, sampler or study.sampler_spec,
                   study.metrics, study.repeats, study.task, train_digest)

    def differences(self, other: StoredSettings) -> list[str]:
        """What a joining run would change, ignoring where the module file sits and the data's
        hash (a changed dataset has its own check and its own ``--allow-data-change``)."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: stored {a[k]!r}, now {b[k]!r}" for k in a
                if k not in ("module_path", "data_hash", "train_digest") and a[k] != b[k]]

    @property
    def direction(self) -> Direction:
        return self.task.directions()[self.metric]

    @property
    def objectives(self) -> tuple[str, ...]:
        """The names of what the study optimises, in Optuna's objective order."""
        return self.metrics or (self.metric,)

    @property
    def directions(self) -> list[Direction]:
        return [self.task.directions().get(m) or COSTS[m] for m in self.objectives]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1
