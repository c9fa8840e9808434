"""Read-only views of a storage: which studies it holds and what their trials did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError
from hpsearch.storage import mask


@dataclass(frozen=True)
class StudyLine:
    name: str
    direction: str
    states: dict[str, int]
    best_value: float | None
    best_trial: int | None


def study_lines(storage: optuna.storages.BaseStorage) -> list[StudyLine]:
    lines = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        states = {st.name: n for st in TrialState if (n := sum(t.state == st for t in trials))}
        best = s.best_trial
        lines.append(StudyLine(s.study_name, s.direction.name.lower(), states,
                               best.value if best else None, best.number if best else None))
    return lines


def pick_study(storage: optuna.storages.BaseStorage, url: str, name: str | None) -> optuna.Study:
    """The named study, or the only one in the storage; otherwise say which exist."""
    names = optuna.get_all_study_names(storage)
    if name is None:
        if len(names) == 1:
            name = names[0]
        elif not names:
            raise HpsearchError(f"{mask(url)} holds no study yet; run `hpsearch run STUDY` first")
        else:
            raise HpsearchError(f"{mask(url)} holds {len(names)} studies ({', '.join(sorted(names))}); "
                                "name one: `hpsearch best STUDY`")
    elif name not in names:
        listing = ", ".join(sorted(names)) or "none"
        raise HpsearchError(f"no study {name!r} in {mask(url)} (it has: {listing}); "
                            "check the name or pass --storage URL")
    return optuna.load_study(study_name=name, storage=storage)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
            "seconds": None if duration is None else round(duration, 2),
            "n_params": t.user_attrs.get("n_params"),
            "params": dict(t.params),
            "error": t.user_attrs.get("error"),
        })
    return rows
