"""Narrow reads straight from Optuna's tables: listing rows, state counts, completed trial ids.

Why not ``study.get_trials()``: Optuna builds a full FrozenTrial per trial through the ORM,
every intermediate value and user attribute included (hpsearch's per-epoch curves are most of
the bytes): ~7 s for a 10,000-trial SQLite study, before a row is printed. ``hpsearch trials``
needs seven columns, so this module runs one Core SELECT per Optuna table over Optuna's own
table definitions and skips the curves. Another storage, or a schema these queries do not
fit, falls back to the public API: the rows are the same either way (the tests compare them).
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import lru_cache
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from hpsearch.store.compat import rdb_models, study_id
from hpsearch.store.records import TrialRecord

Row = dict[str, Any]
ROW_ATTRS = ("epochs", "n_params", "flops", "model", "rejected", "error")  # the user attributes a listing shows


def trial_rows(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[Row]:
    """One row per trial, by number: state, value, epochs, seconds, model, parameter count, FLOPs,
    params, error (or why it was rejected before training)."""
    if isinstance(storage, RDBStorage):
        try:
            return _rdb_rows(storage, storage.get_study_id_from_name(study.study_name))
        except (SQLAlchemyError, KeyError, ValueError, AttributeError):
            pass  # a schema these queries do not fit: the public API gives the same rows, slower
    return [row_of(t) for t in study.get_trials(deepcopy=False)]


def state_counts(study: optuna.Study, storage: optuna.storages.BaseStorage) -> dict[str, int]:
    """Trials per state name, zero counts left out (one GROUP BY on an RDB storage)."""
    if isinstance(storage, RDBStorage):
        try:
            return _rdb_counts(storage, study_id(study))
        except (SQLAlchemyError, KeyError, AttributeError):
            pass
    trials = study.get_trials(deepcopy=False)
    return {s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))}


def row_of(t: FrozenTrial) -> Row:
    """The row for one trial, from Optuna's public FrozenTrial (the reference the fast path matches)."""
    return _row(t.number, t.state, t.values, t.datetime_start, t.datetime_complete, dict(t.params),
                t.user_attrs, len(t.intermediate_values))


def _row(number: int, state: TrialState, values: list[float] | None, start: Any, complete: Any,
         params: dict[str, Any], attrs: dict[str, Any], reports: int) -> Row:
    duration = (complete - start).total_seconds() if complete and start else None
    rec = TrialRecord.of(number, attrs)
    return {
        "number": number,
        "state": state.name,
        "value": values[0] if values else None,  # the study metric (the first objective, with several)
        **({"values": values} if values is not None and len(values) > 1 else {}),
        "epochs": rec.epochs if rec.epochs is not None else reports,
        "seconds": None if duration is None else round(duration, 2),
        "n_params": rec.n_params,
        "flops": rec.flops,  # forward FLOPs per image
        "model": rec.model,
        "params": params,
        "error": rec.why_not_trained,
    }


def _tables() -> Any:
    return rdb_models()  # Optuna's schema, versioned with the storage itself


def _rdb_counts(storage: RDBStorage, study_id: int) -> dict[str, int]:
    T = _tables().TrialModel.__table__
    with storage.engine.connect() as conn:
        got = conn.execute(select(T.c.state, func.count()).where(T.c.study_id == study_id).group_by(T.c.state)).all()
    counts = {_state(s).name: n for s, n in got}
    return {s.name: counts[s.name] for s in TrialState if counts.get(s.name)}


def completed_ids(storage: RDBStorage, study_id: int) -> list[int]:
    """Ids of the study's COMPLETE trials: one indexed query, no trial built."""
    T = _tables().TrialModel.__table__
    with storage.engine.connect() as conn:
        return list(conn.execute(select(T.c.trial_id).where(T.c.study_id == study_id,
                                                             T.c.state == TrialState.COMPLETE)).scalars())


def _rdb_rows(storage: RDBStorage, study_id: int) -> list[Row]:
    m = _tables()
    T, V, P = m.TrialModel.__table__, m.TrialValueModel.__table__, m.TrialParamModel.__table__
    U, IV = m.TrialUserAttributeModel.__table__, m.TrialIntermediateValueModel.__table__

    def of_study(*cols: Any, table: Any) -> Any:
        return select(*cols).select_from(table.join(T, table.c.trial_id == T.c.trial_id)) \
            .where(T.c.study_id == study_id)

    with storage.engine.connect() as conn:
        trials = conn.execute(select(T.c.trial_id, T.c.number, T.c.state, T.c.datetime_start, T.c.datetime_complete)
                              .where(T.c.study_id == study_id).order_by(T.c.number)).all()
        values: dict[int, list[float]] = defaultdict(list)
        for tid, v, vt in conn.execute(of_study(V.c.trial_id, V.c.value, V.c.value_type, table=V)
                                       .order_by(V.c.trial_id, V.c.objective)):
            values[tid].append(m.TrialValueModel.stored_repr_to_value(v, vt))
        params: dict[int, dict[str, Any]] = defaultdict(dict)
        for tid, name, stored, dist in conn.execute(
                of_study(P.c.trial_id, P.c.param_name, P.c.param_value, P.c.distribution_json, table=P)
                .order_by(P.c.param_id)):
            params[tid][name] = _distribution(dist).to_external_repr(stored)
        attrs: dict[int, dict[str, Any]] = defaultdict(dict)
        for tid, key, value in conn.execute(of_study(U.c.trial_id, U.c.key, U.c.value_json, table=U)
                                            .where(U.c.key.in_(ROW_ATTRS))):
            attrs[tid][key] = json.loads(value)
        reports = dict(conn.execute(of_study(IV.c.trial_id, func.count(), table=IV).group_by(IV.c.trial_id)).all())
    return [_row(number, _state(state), values.get(tid), start, complete, params.get(tid, {}), attrs.get(tid, {}),
                 reports.get(tid, 0)) for tid, number, state, start, complete in trials]


def _state(stored: Any) -> TrialState:
    return stored if isinstance(stored, TrialState) else TrialState[str(stored)]


@lru_cache(maxsize=1024)
def _distribution(text: str) -> BaseDistribution:
    return json_to_distribution(text)
