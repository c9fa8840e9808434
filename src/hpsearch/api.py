"""The Python API: what the commands do, called from a notebook or a script, typed results back.

The course reports this project serves were written in notebooks; shelling out to ``hpsearch``
and parsing its tables is what they had to do before. Each function here is the service a
command calls, with the command's defaults, and returns the service's own result object — no
printing but the run's live view (``quiet=True`` silences it) — so a result is read as
attributes, and :func:`frame` turns a comparison or a trial list into a pandas DataFrame where
pandas is installed.

    from hpsearch import api
    api.search("digits", workers=2, n_trials=20)
    table = api.compare("digits", by=["optimizer"], metrics=["val_loss", "val_top1"])
    answer = api.best("digits", retrain=True, seeds=5)   # the one counted look at the test split
    answer.record["test"]["top1"]                        # mean, std and every seed's value

Errors are the CLI's one-line errors as exceptions (:class:`hpsearch.errors.HpsearchError`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    import optuna

    from hpsearch.results.best import BestAnswer
    from hpsearch.results.compare import At, Comparison, Order, Stat
    from hpsearch.run.supervisor import RunResult
    from hpsearch.store.records import TrialRecord


def _url(storage: str | None) -> str:
    from hpsearch.store.storage import default_url

    return storage or default_url()


def _study(name: str | None, storage: str | None, verb: str) -> optuna.Study:
    from hpsearch.store.queries import pick_study
    from hpsearch.store.storage import open_storage

    url = _url(storage)
    return pick_study(open_storage(url, create=False), url, name, verb)


def search(study: str | Path, *, workers: int | str = 1, n_trials: int | None = None, timeout: float | None = None,
           storage: str | None = None, device: str = "auto", data_root: str | Path | None = None,
           studies_dir: str | Path | None = None, name: str | None = None, pruner: str = "median",
           sampler: str | None = None, seed: int | None = None, trials_per_worker: int = 1,
           quiet: bool = False) -> RunResult:
    """``hpsearch run``: worker processes pull trials until the budget is met; the run's summary back.

    ``study`` is a module name (``./studies``, else the shipped ones) or a path to a ``.py`` file.
    Ctrl-C (a notebook's interrupt) stops the workers and marks their trials failed, as the
    command does; calling again resumes.
    """
    from hpsearch.data import default_data_root
    from hpsearch.run import supervisor
    from hpsearch.train.options import Speedups

    console = Console(file=io.StringIO()) if quiet else Console(markup=False)
    return supervisor.run(supervisor.RunRequest(
        study=str(study), storage=_url(storage), data_root=Path(data_root) if data_root else default_data_root(),
        workers=workers, n_trials=n_trials, timeout=timeout, seed=seed, device=device,
        studies_dir=Path(studies_dir) if studies_dir else None, name=name, pruner=pruner, sampler=sampler,
        trials_per_worker=trials_per_worker, speedups=Speedups.from_env()), console)


def best(study: str | None = None, *, storage: str | None = None, retrain: bool = False, seeds: int = 5,
         top_k: int = 1, trial: int | None = None, where: Mapping[str, Any] | None = None, force: bool = False,
         epochs: int | None = None, refit: bool = False, device: str = "auto", data_root: str | Path | None = None,
         out_dir: str | Path = "runs", studies_dir: str | Path | None = None) -> BestAnswer:
    """``hpsearch best``: the best trial (or ``where``'s row of :func:`compare`, or ``trial``); with
    ``retrain=True`` its retrain over ``seeds`` fresh seeds and the one counted look at the test
    split — read from the record when it already answers (``force=True`` looks again, counted)."""
    from hpsearch.results.best import best as answer

    st = _study(study, storage, "best")
    rows = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in where.items()} if where else None
    if not retrain:
        return answer(st, trial, where=rows)
    from hpsearch.data import default_data_root
    from hpsearch.results.retrain import RetrainRequest
    from hpsearch.train.loop import resolve_device
    from hpsearch.train.options import Speedups

    request = RetrainRequest(seeds=seeds, top_k=top_k, force=force, trial=trial, epochs=epochs, refit=refit,
                             data_root=Path(data_root) if data_root else default_data_root(),
                             device=resolve_device(device), out_dir=Path(out_dir),
                             studies_dir=Path(studies_dir) if studies_dir else None, storage_url=_url(storage),
                             speedups=Speedups.from_env())
    return answer(st, trial, request, where=rows)


def compare(study: str | None = None, *, by: Sequence[str], metrics: Sequence[str] | None = None,
            at: At = "best", stat: Stat = "mean", order: Order = "score", storage: str | None = None) -> Comparison:
    """``hpsearch compare``: the rows of ``by`` with any recorded metric, validation only.
    ``.to_dict()`` is what ``--json`` prints; :func:`frame` makes it a DataFrame."""
    from hpsearch.results.compare import compare as group
    from hpsearch.store.queries import settings_of

    st = _study(study, storage, "compare")
    settings = settings_of(st)
    return group(st, list(by), settings.metric, metrics=list(metrics) if metrics else None, at=at, stat=stat,
                 order=order, sampler=settings.sampler)


def trials(study: str | None = None, *, storage: str | None = None) -> list[TrialRecord]:
    """Every trial's record — its curves of every metric (train and validation, per epoch), best
    epoch, size, seeds and timing — as :class:`hpsearch.store.records.TrialRecord`, by number."""
    from hpsearch.store.queries import settings_of
    from hpsearch.store.records import trial_record

    st = _study(study, storage, "trials")
    metric = settings_of(st).metric
    maximize = st.directions[0].name == "MAXIMIZE"
    return [trial_record(t, metric, maximize) for t in st.get_trials(deepcopy=False)]


def frame(result: Comparison | Sequence[TrialRecord]) -> Any:
    """A pandas DataFrame of a comparison (one row per group: its parameters, n, the study metric's
    mean and std, and each asked metric's) or of trial records (one row per trial, its curves
    left out). pandas is not a dependency: ``pip install pandas``."""
    try:
        import pandas as pd
    except ImportError:
        from hpsearch.errors import HpsearchError

        raise HpsearchError("api.frame needs pandas: pip install pandas") from None
    from hpsearch.results.compare import Comparison

    if isinstance(result, Comparison):
        shown = result.to_dict()
        rows = []
        for g in shown["groups"]:
            row = {**g["params"], "n": g["n"], f"{shown['metric']}_mean": g["mean"], f"{shown['metric']}_std": g["std"],
                   "best_epoch": g["best_epoch"], "final_epoch": g["final_epoch"], "seconds": g["seconds"],
                   "n_params": g["n_params"]}
            for m, s in g.get("metrics", {}).items():
                row.update({f"{m}_{k}": v for k, v in s.items() if k != "values"})
            rows.append(row)
        return pd.DataFrame(rows)
    import dataclasses

    return pd.DataFrame([{k: v for k, v in dataclasses.asdict(r).items() if k not in ("curves", "repeat_curves")}
                         for r in result])
