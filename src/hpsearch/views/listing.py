"""Which trials ``hpsearch trials`` lists, in what order, with which columns.

Selection only (no formatting): the rows come from :mod:`hpsearch.store.rows`, the rendering from
:mod:`hpsearch.views.terminal`. A column is one of the fixed ones below, an objective by its name
(``val_top1``; ``value`` also names the first) or a searched parameter by its name.
Parameters keep the order the search space suggests them in, so a listing reads like the
study module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from optuna.trial import TrialState

from hpsearch.errors import BadOption
from hpsearch.store.rows import Row

FIXED = ("number", "state", "epochs", "seconds", "params", "flops", "model", "error")
STATES = tuple(s.name.lower() for s in TrialState)


@dataclass(frozen=True)
class Listing:
    """The chosen rows, in order, and what to show of them."""

    rows: list[Row]
    objectives: list[str]  # the study's objective names, in order
    params: list[str]  # every searched parameter, in search-space order
    columns: list[str] | None  # chosen with --columns; None: the default, as many as fit
    total: int  # trials in the study before filtering
    ranked_over: int | None = None  # params ordered by importance over this many completed trials (None: space order)


RANK_FROM = 10  # completed trials from which a table's parameter columns go by importance (space order is arbitrary)


def by_importance(listing: Listing, importances: dict[str, float], completed: int) -> Listing:
    """The same listing with its parameters most important first (the rest after, in space order),
    so the columns a terminal has room for are the ones that mattered; from :data:`RANK_FROM`
    completed trials (below that a ranking rests on too few), else unchanged."""
    if completed < RANK_FROM or not importances:
        return listing
    ranked = sorted((p for p in listing.params if p in importances), key=lambda p: -importances[p])
    rest = [p for p in listing.params if p not in importances]
    return replace(listing, params=ranked + rest, ranked_over=completed)


def space_order(rows: Sequence[Row]) -> list[str]:
    """Parameter names in the order trials suggested them (first appearance, by trial number)."""
    seen: dict[str, None] = {}
    for r in sorted(rows, key=lambda r: r["number"]):
        seen.update(dict.fromkeys(r["params"]))
    return list(seen)


def value_of(row: Row, column: str, objectives: Sequence[str]) -> Any:
    """The cell of ``column`` (an objective, a fixed column or a parameter) in ``row``."""
    if column in objectives or column == "value":
        i = 0 if column == "value" else list(objectives).index(column)
        values = row.get("values") or ([row["value"]] if row["value"] is not None else [])
        return values[i] if i < len(values) else None
    if column == "params":
        return row["n_params"]
    if column in FIXED:
        return row[column]
    return row["params"].get(column)


def select(rows: list[Row], objectives: list[str], directions: list[str], *, states: str | None = None,
           sort: str | None = None, reverse: bool = False, top: int | None = None,
           columns: str | None = None) -> Listing:
    """Filter by state, sort, keep the first ``top`` and resolve ``columns``; every bad name is
    refused with the names that exist. ``--top`` without ``--sort`` means the best by the study
    metric; an objective sorts best first (its direction), anything else ascending; empty cells last."""
    params = space_order(rows)
    known = ["number", "state", *objectives, "epochs", "seconds", "params", "flops", "model", "error", *params]
    chosen = None if columns is None else _names(columns, known, "--columns")
    picked = rows
    if states is not None:
        want = {s.upper() for s in _names(states, list(STATES), "--state")}
        picked = [r for r in picked if r["state"] in want]
    if top is not None and top < 1:
        raise BadOption(f"--top {top}: give a number of trials, 1 or more")
    key = sort if sort is not None else (objectives[0] if top is not None else None)
    if key is not None:
        key = _names(key, known + ["value"], "--sort")[0]
        best_first = key in objectives or key == "value"
        maximize = best_first and directions[0 if key == "value" else objectives.index(key)] == "maximize"
        picked = _sorted(picked, key, objectives, descending=maximize != reverse)
    if top is not None:
        picked = picked[:top]
    return Listing(picked, objectives, params, chosen, len(rows))


def _sorted(rows: list[Row], column: str, objectives: list[str], descending: bool) -> list[Row]:
    """Stable sort on one column, empty cells last either way; mixed types compare as text."""
    full = [r for r in rows if value_of(r, column, objectives) is not None]
    empty = [r for r in rows if value_of(r, column, objectives) is None]
    numeric = all(isinstance(value_of(r, column, objectives), (int, float)) for r in full)
    ordered = sorted(full, key=lambda r: value_of(r, column, objectives) if numeric
                     else str(value_of(r, column, objectives)), reverse=descending)
    return ordered + empty


def _names(text: str, known: list[str], option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadOption(f"{option} is empty; give one or more of: {', '.join(known)}")
    lower = {k.lower(): k for k in known}
    bad = [n for n in names if n.lower() not in lower]
    if bad:
        raise BadOption(f"{option}: no column {', '.join(repr(b) for b in bad)}; choose from: {', '.join(known)}"
                            if option != "--state" else
                            f"--state: no state {', '.join(repr(b) for b in bad)}; choose from: {', '.join(known)}")
    return [lower[n.lower()] for n in names]
