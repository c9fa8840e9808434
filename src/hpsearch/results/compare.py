"""`hpsearch compare STUDY --by PARAM`: the reports' central table, from the search's own trials.

One row per value of the ``--by`` parameters; the other dimensions (seeds, above all) are
what the mean ± std is over. Only COMPLETE trials count (a pruned or failed trial did not
train to the end, so its score is not comparable); how many were left out is said.
Validation scores only: choosing among the rows by their test score would be tuning on
the test split, which is what the ladder reports this replaces do wrong.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import HpsearchError
from hpsearch.fmt import summary
from hpsearch.store.records import TrialRecord, best_epoch, curves_of_trial


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


@dataclass
class Comparison:
    study: str
    metric: str
    by: list[str]
    maximize: bool
    groups: list[Group]
    left_out: dict[str, int]  # trials not COMPLETE, by state

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for g in self.groups:
            best = g.best_epochs(self.metric, self.maximize)
            rows.append({
                "params": g.params, "n": len(g.values), **summary(g.values),
                "trials": [t.number for t in g.trials],
                "final_epoch": g.mean_of("epochs"), "best_epoch": statistics.fmean(best) if best else None,
                "seconds": g.mean_of("seconds"), "n_params": g.mean_of("n_params"),
            })
        return {"study": self.study, "metric": self.metric, "by": self.by, "direction":
                "maximize" if self.maximize else "minimize", "groups": rows, "left_out": self.left_out}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def compare(study: optuna.Study, by: list[str], metric: str) -> Comparison:
    """Group the study's COMPLETE trials by ``by``, best validation mean first."""
    trials = study.get_trials(deepcopy=False)
    known = sorted({p for t in trials for p in t.params})
    unknown = [p for p in by if p not in known]
    if not by or unknown:
        what = f"no parameter {unknown[0]!r} in study {study.study_name!r}" if unknown else "--by needs a parameter"
        raise HpsearchError(f"{what}; its parameters: {', '.join(known) or '(none yet)'}")
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
    ordered = sorted(groups.values(), key=lambda g: statistics.fmean(g.values), reverse=maximize)
    return Comparison(study.study_name, metric, by, maximize, ordered, left_out)
