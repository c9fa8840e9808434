"""Read-only views of a storage: which studies it holds and what their trials did."""

from __future__ import annotations

import difflib
import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import BadOption, HpsearchError
from hpsearch.fmt import is_pct, mean_std
from hpsearch.hints import command
from hpsearch.store.records import (
    SETTINGS,
    PendingLook,
    RetrainRecord,
    looks_counted,
    pending_look,
    retrain_record,
    study_get,
)
from hpsearch.store.rows import state_counts
from hpsearch.store.storage import mask
from hpsearch.study.declaration import StoredSettings
from hpsearch.study.samplers import SEED_PARAM


@dataclass(frozen=True)
class StudyLine:
    name: str
    direction: str
    states: dict[str, int]
    best_value: float | None
    best_trial: int | None
    front: int | None = None  # several objectives: how many trials are Pareto-optimal
    metrics: tuple[str, ...] = ()  # the objectives' names
    retrain: str = "not retrained"  # the retrain state in a few words


def study_lines(storage: optuna.storages.BaseStorage) -> list[StudyLine]:
    """One line per study; counts by GROUP BY and the best by one query, so big studies list fast."""
    lines = []
    for name in sorted(optuna.get_all_study_names(storage)):
        study = optuna.load_study(study_name=name, storage=storage)
        states = state_counts(study, storage)
        direction = ",".join(d.name.lower() for d in study.directions)
        metrics, retrained = tuple(objective_names(study)), retrain_state(study)
        if len(study.directions) > 1:
            front = len(pareto_front(study)) if states.get(TrialState.COMPLETE.name) else 0
            lines.append(StudyLine(name, direction, states, None, None, front, metrics, retrained))
            continue
        best = best_trial(study) if states.get(TrialState.COMPLETE.name) else None
        lines.append(StudyLine(name, direction, states, best.value if best else None, best.number if best else None,
                               metrics=metrics, retrain=retrained))
    return lines


def retrain_state(study: optuna.Study) -> str:
    """``retrained #3: test top1 0.9712 ± 0.0031 (1 look)``, ``not retrained``, or an interrupted look."""
    rec, looks, killed = recorded(study), looks_counted(study), interrupted_look(study)
    n = f"{looks} look{'s' if looks != 1 else ''}"
    what = f"{killed['what']} interrupted" if killed else ""
    if rec is None:
        return f"{what} ({n})" if killed else (f"not retrained ({n})" if looks else "not retrained")
    return f"retrained #{rec['trial']}: {_test_score(rec)} ({n}{'; ' + what if killed else ''})"


def retrain_line(rec: RetrainRecord) -> str:
    """The retrain in one line, as the dashboard's study page shows it (study user attribute
    ``retrain``): ``trial 3: test top1 0.9712 ± 0.0031 over 5 seeds (test look 1)``."""
    seeds = len(rec["seeds"])
    return (f"trial {rec['trial']}: {_test_score(rec)} over {seeds} seed{'s' if seeds != 1 else ''} "
            f"(test look {rec['test_looks']})")


def _test_score(rec: RetrainRecord) -> str:
    metric = rec["metric"].removeprefix("val_")
    test = rec["test"].get(metric)
    return f"test {metric} {mean_std(test, is_pct(metric))}" if test else "no test score"


def pick_study(storage: optuna.storages.BaseStorage, url: str, name: str | None,
               verb: str = "best") -> optuna.Study:
    """The named study, or the only one in the storage; otherwise say which exist (and which one
    a mistyped name probably meant), naming the command (``verb``) the user ran."""
    names = optuna.get_all_study_names(storage)
    if name is None:
        if len(names) == 1:
            name = names[0]
        elif not names:
            raise HpsearchError(f"{mask(url)} holds no study yet; run `hpsearch run STUDY` first")
        else:
            raise HpsearchError(f"{mask(url)} holds {len(names)} studies ({', '.join(sorted(names))}); "
                                f"name one: `hpsearch {verb} STUDY`")
    elif name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        listing = ", ".join(sorted(names)) or "none"
        raise HpsearchError(f"no study {name!r} in {mask(url)} (it has: {listing}); "
                            f"{guess}check the name or pass --storage URL")
    return optuna.load_study(study_name=name, storage=storage)


def settings_of(study: optuna.Study) -> StoredSettings:
    stored = study_get(study, SETTINGS)
    if stored is None:
        raise HpsearchError(f"study {study.study_name!r} was not created by hpsearch (no settings recorded)")
    return StoredSettings.from_dict(stored)


@dataclass(frozen=True)
class Configuration:
    """COMPLETE trials with the same parameters but the seed: replicates of one configuration.

    In a study whose grid has a ``seed`` dimension the single best trial is the luckiest seed,
    often of a configuration whose mean is not the best; its answer is the configuration with the
    best mean, and the trial that stands for it is that configuration's best seed (its config,
    retrained with fresh seeds, is the configuration's).
    """

    params: dict[str, Any]  # every parameter but the seed
    trials: tuple[FrozenTrial, ...]  # best value first

    @property
    def values(self) -> list[float]:
        return [float(t.value) for t in self.trials if t.value is not None]

    @property
    def lead(self) -> FrozenTrial:
        return self.trials[0]


def replicated(study: optuna.Study) -> bool:
    """Whether the study's grid runs seeds as a dimension (its trials are replicates of configurations)."""
    stored = study_get(study, SETTINGS)
    if stored is None or len(study.directions) > 1:
        return False
    return SEED_PARAM in (StoredSettings.from_dict(stored).sampler.dimensions or {})


def configurations(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[Configuration]:
    """The study's COMPLETE trials (or the given ones) grouped by every parameter but the seed,
    best mean first (ties: the configuration tried first)."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    pool = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if trials is None else trials
    groups: dict[str, list[FrozenTrial]] = {}
    for t in pool:
        if t.state == TrialState.COMPLETE and t.value is not None:
            key = json.dumps({k: v for k, v in t.params.items() if k != SEED_PARAM}, sort_keys=True, default=str)
            groups.setdefault(key, []).append(t)
    configs = [Configuration({k: v for k, v in ts[0].params.items() if k != SEED_PARAM},
                             tuple(sorted(ts, key=lambda t: (-float(t.value or 0) if maximize else float(t.value or 0),
                                                             t.number))))
               for ts in groups.values()]
    sign = -1.0 if maximize else 1.0
    return sorted(configs, key=lambda c: (sign * statistics.fmean(c.values), min(t.number for t in c.trials)))


def matches(value: Any, text: str) -> bool:
    """Whether a stored parameter value is the one a user typed (``lr=0.001``, ``bn=true``, ``width=32``)."""
    if isinstance(value, bool):
        return text.strip().lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return str(value) == text


def where_configurations(study: optuna.Study, where: Mapping[str, str]) -> list[Configuration]:
    """The configurations of the COMPLETE trials whose parameters match ``where`` (a row of
    ``compare``), best mean first; one clear error naming the parameters or values there are."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    known = sorted({p for t in done for p in t.params})
    for name, text in where.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise BadOption(f"--where: no parameter {name!r} in study {study.study_name!r}{guess}; "
                            f"its parameters: {', '.join(known) or '(none completed yet)'}")
        if not any(name in t.params and matches(t.params[name], text) for t in done):
            values = sorted({str(t.params[name]) for t in done if name in t.params})
            raise BadOption(f"--where: no COMPLETE trial has {name}={text}; its values: {', '.join(values)}")
    chosen = [t for t in done if all(n in t.params and matches(t.params[n], v) for n, v in where.items())]
    if not chosen:
        raise BadOption("--where: no COMPLETE trial has " + ", ".join(f"{n}={v}" for n, v in where.items())
                            + " together; `hpsearch compare STUDY --by " + ",".join(where) + "` lists the rows")
    return configurations(study, chosen)


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best COMPLETE trial as Optuna (and its dashboard) defines it; in a study with a seed
    dimension, the best seed of the configuration with the best mean (:class:`Configuration`).

    One indexed query instead of reading every trial: ``hpsearch best`` on a 10,000-trial
    study stays well under a second of database time.
    """
    if len(study.directions) > 1:
        raise _no_single_best(study)
    if replicated(study):
        configs = configurations(study)
        if not configs:
            raise _nothing_complete(study)
        return configs[0].lead
    try:
        return study.best_trial
    except ValueError:
        raise _nothing_complete(study) from None


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The COMPLETE trials no other trial beats on every objective, by trial number."""
    return sorted(study.best_trials, key=lambda t: t.number)


def primary_value(trial: FrozenTrial) -> float | None:
    """The study metric's value: the only objective's, or the first of several."""
    return trial.values[0] if trial.values else None


def objective_names(study: optuna.Study) -> list[str]:
    """What each objective is called (studies before 0.3 stored no names: the settings' metric)."""
    names = study.metric_names
    if names and all(names):
        return list(names)
    return [settings_of(study).metric] if study_get(study, SETTINGS) is not None else ["value"]


def _no_single_best(study: optuna.Study) -> HpsearchError:
    front = pareto_front(study)
    if not front:
        return _nothing_complete(study)
    numbers = ", ".join(str(t.number) for t in front)
    return HpsearchError(f"study {study.study_name!r} has {len(study.directions)} objectives "
                         f"({', '.join(objective_names(study))}): no single best trial; its Pareto front is "
                         f"trial{'s' if len(front) > 1 else ''} {numbers} — pick one: "
                         f"`{command('best', study.study_name, '--retrain', '--trial', 'N')}`")


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials, best first; among equal values :func:`best_trial` leads, then older trials."""
    if len(study.directions) > 1:
        raise _no_single_best(study)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not done:
        raise _nothing_complete(study)
    if replicated(study):  # one candidate per configuration, best mean first
        return [c.lead for c in configurations(study, done)]
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(done, key=lambda t: (t.value, -t.number), reverse=reverse)
    lead = best_trial(study)  # has the best value too; it goes first so `best` and retrain agree
    return [lead] + [t for t in ranked if t.number != lead.number]


def chosen_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number``, if it trained to the end (a pruned or failed one has no final score)."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise HpsearchError(f"study {study.study_name!r} has no trial {number} (trials 0–{len(trials) - 1})")
    if trials[number].state != TrialState.COMPLETE:
        raise HpsearchError(f"trial {number} is {trials[number].state.name}, not COMPLETE: only a trial that "
                            "trained to the end can be retrained")
    return trials[number]


def _nothing_complete(study: optuna.Study) -> HpsearchError:
    counts = {s.name.lower(): n for s in TrialState if (n := len(study.get_trials(deepcopy=False, states=(s,))))}
    have = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
    return HpsearchError(f"study {study.study_name!r} has no completed trial yet ({have}); "
                         f"run `{command('run', study.study_name)}` first")


def recorded(study: optuna.Study) -> RetrainRecord | None:
    return retrain_record(study)


def interrupted_look(study: optuna.Study) -> PendingLook | None:
    """The look a killed retrain or ``compare --test`` began and never recorded, if any."""
    return pending_look(study)
