"""`hpsearch best --retrain`: re-score, retrain over fresh seeds, look at the test split once.

The record we write into the study counts every look at the test split (``test_looks``), so
a number reported from it can always say how often the test set was consulted. A second
``--retrain`` shows that record instead of evaluating again; only ``--force`` looks again.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import optuna
import torch
from optuna.trial import FrozenTrial

from hpsearch.data import (
    DatasetInfo,
    SearchData,
    Tensors,
    load_search_data,
    prepare,
    refit_data,
)
from hpsearch.errors import BadOption, HpsearchError
from hpsearch.fmt import summary
from hpsearch.results import checkpoints
from hpsearch.results.look import Look, look_at_test_split
from hpsearch.results.provenance import evidence
from hpsearch.store.paths import safe_name
from hpsearch.store.queries import (
    best_trial,
    chosen_trial,
    interrupted_look,
    objective_names,
    primary_value,
    ranked_trials,
    recorded,
    retrain_line,
    settings_of,
)
from hpsearch.store.records import (
    FINGERPRINT,
    RETRAIN_LINE,
    RetrainRecord,
    SeedRun,
    config_of,
    run_metric,
    study_get,
    study_put,
)
from hpsearch.study.config import TrialConfig
from hpsearch.study.declaration import StoredSettings
from hpsearch.study.rebuild import check_data_hash, ensure_data_code, ensure_specs
from hpsearch.study.seeds import retrain_seeds
from hpsearch.tasks import ModelTest, Task
from hpsearch.train.fused import fit_together, why_not_fusable
from hpsearch.train.loop import EpochMetrics, FitResult, fit
from hpsearch.train.options import Speedups

__all__ = ["RetrainRequest", "Retrained", "needs_look", "retrain", "save_checkpoint"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tick:
    """One finished epoch of a retrain, for a progress view (the trainer knows nothing of views)."""

    label: str  # what is being trained: "trial 3", "refit trial 3"
    seed_index: int  # 1-based, of ``seeds``
    seeds: int
    epoch: int
    epochs: int
    metric: str  # the study metric, or "train_loss" when refitting (no validation split)
    value: float | None
    done: int  # epochs finished in this retrain so far, of ``total``
    total: int
    elapsed: float  # seconds since the first epoch began

    @property
    def eta(self) -> float:
        """Seconds left for the remaining epochs at the pace so far (test evaluation not included)."""
        return self.elapsed / self.done * (self.total - self.done) if self.done else float("nan")


Ticker = Callable[[Tick], None]


@dataclass(frozen=True)
class RetrainRequest:
    seeds: int = 5
    top_k: int = 1
    force: bool = False
    data_root: Path = Path(".")
    device: torch.device = torch.device("cpu")
    out_dir: Path = Path("runs")
    studies_dir: Path | None = None  # where to find the study module if a trial's model needs it
    allow_module_change: bool = False
    allow_data_change: bool = False
    storage_url: str | None = None  # the database the look's lock lives in (default: the one the study opened)
    trial: int | None = None  # retrain this trial instead of the best (e.g. a point of the Pareto front)
    epochs: int | None = None  # train the final runs this long (default: the search's max_epochs)
    refit: bool = False  # train the final runs on train + validation (no validation score left)
    speedups: Speedups = Speedups()  # fusion and capture, as the CLI resolved them (Speedups.from_env)
    named_by: str | None = None  # how the user chose ``trial`` (``--where opt=sgd``), for the messages; --trial N


@dataclass(frozen=True)
class Retrained:
    record: RetrainRecord
    looked: bool  # this call looked at the test split (False: the record already answered it)


def needs_look(study: optuna.Study, req: RetrainRequest) -> bool:
    """The "once" policy of ``best --retrain``, in one place: whether this request must look at the
    test split (no record yet, ``--force``, or an earlier look was killed) or the record answers it.

    A request the record cannot answer without ``--force`` is refused in one line naming the
    ``--force`` command: another trial than the one retrained, or a refit where the record is not.
    """
    if req.seeds < 1 or req.top_k < 1 or (req.epochs is not None and req.epochs < 1):
        raise BadOption("--seeds, --top-k and --epochs must be >= 1")
    if req.trial is None and settings_of(study).multi:
        best_trial(study)  # raises: several objectives have no single best; names the front and --trial
    if req.trial is not None:
        chosen_trial(study, req.trial)  # raises for a trial that does not exist or did not complete
    rec = recorded(study)
    if rec is not None and not req.force:
        if req.refit and not rec["refit"]:
            raise HpsearchError("the retrain record was trained on train only, not refit; --refit --force refits "
                                "on train + validation (a new look at the test split, counted)")
        if req.trial is not None and rec["trial"] != req.trial:
            named = req.named_by or f"--trial {req.trial}"
            raise HpsearchError(f"the retrain record is for trial {rec['trial']}; {named} --force "
                                f"retrains trial {req.trial} (a new look at the test split, counted)")
    return rec is None or req.force or interrupted_look(study) is not None


def retrain(study: optuna.Study, req: RetrainRequest, progress: Progress | None = None,
            tick: Ticker | None = None) -> Retrained:
    """The retrain record, computed (one look at the test split) only where :func:`needs_look` says.

    One look of a study runs at a time (a second one is refused, not queued: it would only repeat
    the first's look); the policy is asked again once the look is held, since one that finished
    meanwhile may have answered the request. Each look is counted before the test split is read
    (:mod:`hpsearch.results.look`), so a retrain killed mid-evaluation over-counts, never hides.
    """
    if needs_look(study, req):
        with look_at_test_split(study, "retrain", req.storage_url) as look:
            if needs_look(study, req):
                return Retrained(_retrain(study, req, look, progress, tick), looked=True)
    rec = recorded(study)
    assert rec is not None  # needs_look is False only with a record
    return Retrained(rec, looked=False)


def _retrain(study: optuna.Study, req: RetrainRequest, look: Look, progress: Progress | None,
             tick: Ticker | None) -> RetrainRecord:
    say = progress or (lambda _msg: None)
    previous = recorded(study)
    lost = look.interrupted
    if look.killed_line:
        say(look.killed_line)
    settings = settings_of(study)
    candidates = [chosen_trial(study, req.trial)] if req.trial is not None else ranked_trials(study)[: req.top_k]
    stored_fp = study_get(study, FINGERPRINT, {})
    ensure_specs([config_of(t) for t in candidates], settings, stored_fp,
                 req.studies_dir, req.allow_module_change)
    ensure_data_code(settings, stored_fp, req.studies_dir, req.allow_module_change)
    warning = check_data_hash(settings, prepare(settings.data, req.data_root), req.allow_data_change,
                              f"study {study.study_name!r}")
    if warning:
        say(warning)
    round_ = look.number - 1  # fresh seeds for every look: a new round never overwrites an earlier one's checkpoints
    data = load_search_data(settings.data, req.data_root, req.device, recorded=settings.train_digest, say=say,
                            files_hash=None if req.allow_data_change else settings.data_hash)
    say(f"loaded {settings.data.label}: {len(data.train)} train / {len(data.val)} val images")

    def search_epochs(trial: FrozenTrial) -> int:  # its config's own length (TrialConfig.epochs), else the study's
        return TrialConfig.from_dict(config_of(trial)).epochs_in(settings.max_epochs)

    epochs = req.epochs or search_epochs(candidates[0])  # what the progress bar counts with
    task = settings.task
    scored: list[dict[str, Any]] = []
    leader: tuple[FrozenTrial, list[int], list[FitResult], float] | None = None
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    scoring = candidates if len(candidates) > 1 or not req.refit else []  # a refit has no validation to rank by
    pace = _Pace(tick, (len(scoring) + req.refit) * req.seeds, epochs)
    for trial in scoring:
        config = TrialConfig.from_dict(config_of(trial))
        seeds = retrain_seeds(settings.seed, trial.number, req.seeds, round_=round_)
        fits = _fit_seeds(config, data, seeds, req.epochs or search_epochs(trial), req.device, req.speedups, task,
                          pace.of(f"trial {trial.number}", settings.metric),
                          functools.partial(_say_scored, say, trial.number, settings.metric))
        vals = [float(getattr(f.history[-1], settings.metric)) for f in fits]
        mean = statistics.fmean(vals)
        scored.append({"trial": trial.number, "search_value": primary_value(trial), **summary(vals)})
        if leader is None or (mean > leader[3] if maximize else mean < leader[3]):
            leader = (trial, seeds, fits, mean)
    if req.refit:  # the chosen config again, on train + validation, with the same seeds
        trial = leader[0] if leader is not None else candidates[0]
        seeds = retrain_seeds(settings.seed, trial.number, req.seeds, round_=round_)
        config = TrialConfig.from_dict(config_of(trial))
        train_val = refit_data(data)
        epochs = req.epochs or search_epochs(trial)
        say(f"refit: trial {trial.number} on train + validation ({len(train_val.train)} images), {epochs} epochs")
        fits = _fit_seeds(config, train_val, seeds, epochs, req.device, req.speedups, task,
                          pace.of(f"refit trial {trial.number}", "train_loss"), lambda s, m: say(f"trial {trial.number} seed {s}: train loss {m.train_loss:.4f}"))
        leader = (trial, seeds, fits, float("nan"))
    assert leader is not None
    trial, seeds, fits, _ = leader
    epochs = req.epochs or search_epochs(trial)

    test = look.read(settings.data, req.data_root, data.mean, data.std, req.device, trial=trial.number, seeds=seeds)
    say(f"evaluating {len(fits)} models on the {len(test)} test images (test look {look.number})")
    runs, task_fields = _test_once(fits, seeds, test, data, trial, settings, req.out_dir, study.study_name, req.refit)
    names = list(task.METRICS)
    record: RetrainRecord = {
        "trial": trial.number,
        "search_value": primary_value(trial),
        "search_values": dict(zip(objective_names(study), trial.values or [])),
        "metric": settings.metric,
        "params": dict(trial.params),
        "model": TrialConfig.from_dict(config_of(trial)).model.to_dict(),  # exactly what was retrained
        "n_params": fits[0].n_params,
        "epochs": epochs,
        "refit": req.refit,  # trained on train + validation: "val" is empty, the test split is all there is
        "search_epochs": search_epochs(trial),  # differs from "epochs" when --epochs trained longer
        "seeds": seeds,
        "task": task.to_dict(),
        "device": str(req.device),
        "runs": runs,
        "val": {m: summary([_number(r, f"val_{m}") for r in runs]) for m in _metrics(runs, "val", names)},
        "test": {m: summary([_number(r, f"test_{m}") for r in runs]) for m in _metrics(runs, "test", names)},
        "candidates": scored,
        "first_layer": _first_layer(fits[0].model, seeds[0]),
        "test_looks": look.number,
        "interrupted_looks": sorted({*(previous["interrupted_looks"] if previous else []),
                                     *([lost["look"]] if lost else [])}),
        "rounds": round_ + 1,
    }
    # the task's own keys (classify: topk_k, confusion, classes, samples, mistakes; reconstruct and
    # segment: their samples, distribution) and the provenance, both declared in RetrainRecord
    record.update(cast(RetrainRecord, {**task_fields, **evidence()}))
    study_put(study, RETRAIN_LINE, retrain_line(record))
    look.record(record)
    return record


class _Pace:
    """Counts a retrain's epochs against its plan and turns each into a :class:`Tick`."""

    def __init__(self, tick: Ticker | None, runs: int, epochs: int) -> None:
        self.tick, self.total, self.epochs, self.done = tick, runs * epochs, epochs, 0
        self.t0 = time.monotonic()

    def of(self, label: str, metric: str) -> Callable[[int, int, EpochMetrics], None]:
        """The per-epoch callback for the seeds of one config (``label``), reporting ``metric``."""
        def on_epoch(seed_index: int, seeds: int, m: EpochMetrics) -> None:
            self.done += 1
            if self.tick is not None:
                value = m.train_loss if metric == "train_loss" else getattr(m, metric)
                self.tick(Tick(label, seed_index, seeds, m.epoch, self.epochs, metric, value, self.done,
                               self.total, time.monotonic() - self.t0))
        return on_epoch


def _say_scored(say: Progress, number: int, metric: str, seed: int, m: EpochMetrics) -> None:
    say(f"trial {number} seed {seed}: {metric}={getattr(m, metric):.4f}")


def _fit_seeds(config: TrialConfig, data: SearchData, seeds: list[int], epochs: int, device: torch.device,
               speedups: Speedups, task: Task, on_epoch: Callable[[int, int, EpochMetrics], None],
               done: Callable[[int, EpochMetrics], None]) -> list[FitResult]:
    """One run per seed; ``on_epoch(i, K, metrics)`` after every epoch of seed i of K, ``done(seed,
    last epoch)`` after each run.

    Where ``speedups`` fuse on ``device`` (on CUDA by default, or ``HPSEARCH_FUSE=1``) and the K
    runs can fuse, they train as one model, epoch by epoch (seeds 1..K after each epoch,
    then ``done`` for each seed in order); otherwise one after another, as they always have.
    """
    k = len(seeds)
    if k > 1 and speedups.fuses(device) and why_not_fusable([config] * k) is None:
        fits = fit_together([config] * k, data, epochs=epochs, seeds=seeds, device=device, task=task,
                            speedups=replace(speedups, fuse=True), report=lambda i, m: on_epoch(i + 1, k, m))
        for seed, f in zip(seeds, fits):
            done(seed, f.history[-1])
        return fits
    fits = []
    for i, seed in enumerate(seeds, 1):
        fits.append(fit(config, data, epochs=epochs, seed=seed, device=device, task=task, speedups=speedups,
                        report=functools.partial(on_epoch, i, k)))
        done(seed, fits[-1].history[-1])
    return fits


def _first_layer(model: torch.nn.Module, seed: int) -> dict[str, Any] | None:
    """Weights of the first convolution (what the network learned to look for), for the report."""
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None:
        return None
    w = conv.weight.detach().float().cpu()
    return {"seed": seed, "shape": list(w.shape), "weights": [round(v, 5) for v in w.flatten().tolist()]}


def _number(run: SeedRun, key: str) -> float:
    value = run_metric(run, key)
    if value is None:
        raise KeyError(f"seed {run['seed']} has no {key}")
    return value


def _metrics(runs: list[SeedRun], prefix: str, names: list[str]) -> list[str]:
    return [m for m in names if runs and run_metric(runs[0], f"{prefix}_{m}") is not None]


def evaluate(task: Task, model: torch.nn.Module, test: Tensors, info: DatasetInfo, index: int) -> ModelTest:
    """One retrained model's single evaluation on the test split, scored by the study's task."""
    return task.test_model(model, test, info, index)


def _test_once(fits: list[FitResult], seeds: list[int], test: Tensors, data: SearchData, trial: FrozenTrial,
               settings: StoredSettings, out_dir: Path, study_name: str,
               refit: bool = False) -> tuple[list[SeedRun], dict[str, Any]]:
    """Evaluate each model once on the test split and save its checkpoint before the next is
    evaluated (a retrain killed mid-way has saved what it scored); then the task merges what the
    models kept (confusion matrix, samples) into the record's task fields."""
    task = settings.task
    runs: list[SeedRun] = []
    results = []
    folder = out_dir / safe_name(study_name)  # a name another tool stored may hold '/' or '..'
    folder.mkdir(parents=True, exist_ok=True)
    config = TrialConfig.from_dict(config_of(trial))
    for i, (seed, f) in enumerate(zip(seeds, fits)):
        result = evaluate(task, f.model, test, data.info, i)
        results.append(result)
        last = f.history[-1]
        run = {
            "seed": seed, **{f"val_{m}": last.val.get(f"val_{m}") for m in task.METRICS},
            **{f"test_{m}": v for m, v in result.metrics.items()}, "seconds": round(f.seconds, 2),
            "trained_on": "train+val" if refit else "train", "fused": f.fused, **result.run, "curves": f.curves(),
        }
        path = (folder / f"trial{trial.number}-seed{seed}.pt").resolve()
        save_checkpoint(path, f, config, trial, seed, settings, data, study_name, run)
        run["checkpoint"] = str(path)
        runs.append(cast(SeedRun, run))  # with the task's val_<metric> / test_<metric> keys
    return runs, task.test_record(results, test, data.info)


def save_checkpoint(path: Path, f: FitResult, config: TrialConfig, trial: FrozenTrial, seed: int,
                    settings: StoredSettings, data: SearchData, study_name: str, metrics: dict[str, Any]) -> None:
    """A checkpoint that rebuilds its model with nothing else: weights + spec + config + provenance."""
    checkpoints.save(path, f.model, config.model, {
        "config": config.to_dict(),
        "settings": settings.to_dict(),
        "dataset": {"name": data.info.name, "channels": data.info.channels, "size": list(data.info.size),
                    "shape": list(data.info.shape), "classes": list(data.info.classes),
                    "spec": settings.data.stored(), "content_sha256": settings.data_hash},
        "normalization": {"mean": data.mean.tolist(), "std": data.std.tolist()},
        "study": study_name,
        "trial": trial.number,
        "params": dict(trial.params),
        "seed": seed,
        "task": settings.task.to_dict(),
        "metrics": {k: v for k, v in metrics.items() if k not in ("curves", "sample_predictions")},
        **evidence(),
    })
