"""`hpsearch compare STUDY --by PARAM`: the reports' central table, from the search's own trials.

One row per value of the ``--by`` parameters; the other dimensions (seeds, above all) are
what the mean ± std is over. Only COMPLETE trials count (a pruned or failed trial did not
train to the end, so its score is not comparable); how many were left out is said.
Validation scores only: choosing among the rows by their test score would be tuning on
the test split, which is what the ladder reports this replaces do wrong.
"""

from __future__ import annotations

import difflib
import json
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import BadOption, HpsearchError
from hpsearch.fmt import summary
from hpsearch.store.records import TrialRecord, best_epoch, curves_of_trial, trial_record
from hpsearch.study.samplers import SamplerSpec

At = Literal["best", "final"]
Stat = Literal["mean", "min", "max"]
Order = Literal["score", "grid"]
# numbers of the whole trial rather than of an epoch
RECORD_METRICS = ("seconds", "epochs", "best_epoch", "n_params", "n_trainable", "flops")


@dataclass
class Group:
    """The trials sharing one value of every ``--by`` parameter."""

    params: dict[str, Any]
    trials: list[FrozenTrial] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [float(t.values[0]) for t in self.trials if t.values]  # the study metric (first objective)

    def mean_of(self, attr: Literal["epochs", "seconds", "n_params"]) -> float | None:
        got = [float(v) for t in self.trials if (v := getattr(TrialRecord.of_trial(t), attr)) is not None]
        return statistics.fmean(got) if got else None

    def best_epochs(self, metric: str, maximize: bool) -> list[int]:
        """The epoch of each trial's best validation value (1-based): next to the final epoch,
        it says whether training ran past its best."""
        return [b for t in self.trials if (b := best_epoch(curves_of_trial(t).get(metric) or [], maximize)) is not None]

    def curves(self, metric: str) -> list[list[float | None]]:
        return [c for t in self.trials if (c := curves_of_trial(t).get(metric))]

    def measured(self, name: str, at: At, metric: str, maximize: bool) -> list[float]:
        """Each trial's ``name``: a curve (``train_loss``, ``val_topk``, …) read at the trial's best
        epoch of the study metric or at its last, or a number of the whole trial (RECORD_METRICS)."""
        got = []
        for t in self.trials:
            value = metric_value(trial_record(t, metric, maximize), name, at)
            if value is not None:
                got.append(value)
        return got


def metric_value(rec: TrialRecord, name: str, at: At) -> float | None:
    """One trial's number by name (see :meth:`Group.measured`); None where it has none."""
    if name in RECORD_METRICS:
        v = getattr(rec, name)
        return None if v is None else float(v)
    curve = rec.curves.get(name) or []
    epoch = rec.best_epoch if at == "best" and rec.best_epoch is not None else len(curve)
    if not 1 <= epoch <= len(curve) or curve[epoch - 1] is None:
        return None
    return float(curve[epoch - 1])  # type: ignore[arg-type]  # checked just above


@dataclass
class Comparison:
    study: str
    metric: str
    by: list[str]
    maximize: bool
    groups: list[Group]
    left_out: dict[str, int]  # trials not COMPLETE, by state
    metrics: list[str] = field(default_factory=list)  # --metrics: the columns asked for (empty: the default table)
    at: At = "best"
    stat: Stat = "mean"
    order: Order = "score"
    top: int = 0  # the row with the best validation mean (rows may be in the grid's order)

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for g in self.groups:
            best = g.best_epochs(self.metric, self.maximize)
            row: dict[str, Any] = {
                "params": g.params, "n": len(g.values), **summary(g.values),
                "trials": [t.number for t in g.trials],
                "final_epoch": g.mean_of("epochs"), "best_epoch": statistics.fmean(best) if best else None,
                "seconds": g.mean_of("seconds"), "n_params": g.mean_of("n_params"),
            }
            if self.metrics:
                row["metrics"] = {m: _stat(g.measured(m, self.at, self.metric, self.maximize), self.stat)
                                  for m in self.metrics}
            rows.append(row)
        return {"study": self.study, "metric": self.metric, "by": self.by, "direction":
                "maximize" if self.maximize else "minimize", "groups": rows, "left_out": self.left_out,
                "metrics": self.metrics, "at": self.at, "stat": self.stat, "order": self.order, "top": self.top}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _stat(values: list[float], stat: Stat) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` (``fmt.summary``), or ``{"min"|"max", "values"}``; empty values: None."""
    if not values:
        return {stat: None, "values": []}
    if stat == "mean":
        return dict(summary(values))
    return {stat: min(values) if stat == "min" else max(values), "values": values}


def compare(study: optuna.Study, by: list[str], metric: str, *, metrics: list[str] | None = None,
            at: At = "best", stat: Stat = "mean", order: Order = "score",
            sampler: SamplerSpec | None = None) -> Comparison:
    """Group the study's COMPLETE trials by ``by``: best validation mean first, or (``order="grid"``)
    in the order the grid declares its values (``sampler``), other parameters in the order tried."""
    trials = study.get_trials(deepcopy=False)
    known = sorted({p for t in trials for p in t.params})
    unknown = [p for p in by if p not in known]
    if not by or unknown:
        what = f"no parameter {unknown[0]!r} in study {study.study_name!r}" if unknown else "--by needs a parameter"
        raise BadOption(f"--by: {what}; its parameters: {', '.join(known) or '(none yet)'}")
    if at not in ("best", "final") or stat not in ("mean", "min", "max") or order not in ("score", "grid"):
        raise BadOption(f"--at best|final, --stat mean|min|max, --order score|grid; got {at}, {stat}, {order}")
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    groups: dict[str, Group] = {}
    left_out: dict[str, int] = {}
    for t in trials:
        if t.state != TrialState.COMPLETE:
            left_out[t.state.name] = left_out.get(t.state.name, 0) + 1
            continue
        params = {p: t.params.get(p) for p in by}
        key = json.dumps(params, sort_keys=True)
        groups.setdefault(key, Group(params)).trials.append(t)
    if not groups:
        raise HpsearchError(f"study {study.study_name!r} has no COMPLETE trial to compare yet")
    _check_metrics(metrics or [], [t for g in groups.values() for t in g.trials])
    ranked = sorted(groups.values(), key=lambda g: statistics.fmean(g.values), reverse=maximize)
    ordered = ranked if order == "score" else _grid_order(list(groups.values()), by, sampler)
    return Comparison(study.study_name, metric, by, maximize, ordered, left_out, list(metrics or []), at, stat,
                      order, ordered.index(ranked[0]))


def _check_metrics(metrics: list[str], trials: list[FrozenTrial]) -> None:
    have = sorted({k for t in trials for k in curves_of_trial(t)} | set(RECORD_METRICS))
    for m in metrics:
        if m not in have:
            close = difflib.get_close_matches(m, have, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            topk = ("(val_topk is the top-k accuracy: k = 3 for 6–49 classes, 5 for 50 or more) "
                    if m.removeprefix("val_").removeprefix("train_").startswith("top") else "")
            raise BadOption(f"--metrics: no metric {m!r} in these trials; {hint}{topk}they have: {', '.join(have)}")


def _grid_order(groups: list[Group], by: list[str], sampler: SamplerSpec | None) -> list[Group]:
    """Rows in the order the grid declares each ``--by`` value; a parameter the grid does not
    declare (or a study that is no grid) keeps the order its values were first tried in."""
    dims = (sampler.dimensions if sampler is not None else None) or {}
    first_seen: dict[str, dict[str, int]] = {p: {} for p in by}
    for g in sorted(groups, key=lambda g: min(t.number for t in g.trials)):
        for p in by:
            first_seen[p].setdefault(json.dumps(g.params[p]), len(first_seen[p]))

    def rank(g: Group) -> tuple[int, ...]:
        out = []
        for p in by:
            declared = [json.dumps(v) for v in dims.get(p, [])]
            here = json.dumps(g.params[p])
            out.append(declared.index(here) if here in declared else len(declared) + first_seen[p][here])
        return tuple(out)
    return sorted(groups, key=rank)
