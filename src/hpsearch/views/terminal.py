"""Turn results into terminal tables (rich) and machine output (JSON, CSV). No logic here."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial
from rich import box
from rich.console import Console
from rich.table import Table

from hpsearch.fmt import Num, is_pct, mean_std, pack, summary
from hpsearch.fmt import metric as fmt_metric  # one metric's value, written the one way (a local is often `metric`)
from hpsearch.hints import command
from hpsearch.models import LEGACY_MODEL
from hpsearch.store.queries import StudyLine, primary_value
from hpsearch.store.records import RetrainRecord, TrialRecord, best_epoch, config_of, small_attrs, task_of
from hpsearch.views import tables
from hpsearch.views.listing import Listing, value_of

if TYPE_CHECKING:  # search imports torch; listings must not
    from hpsearch.results.best import BestAnswer
    from hpsearch.results.inspect import LayerTable
    from hpsearch.run.supervisor import RunResult


def _f(v: float | None, digits: int = 4) -> str:
    return Num(v, digits=digits).text()


def run_summary(console: Console, r: RunResult) -> None:
    console.print(f"{r.study_name}: {sum(r.states.values())} trials ({r.started} started by this run, "
                  f"{r.elapsed:.0f}s)", highlight=False, soft_wrap=True)
    t = Table()
    t.add_column("state")
    t.add_column("trials", justify="right")
    for state, n in r.states.items():
        t.add_row(state.lower(), str(n))
    if r.front:
        t.add_section()
        t.add_row("Pareto front", ", ".join(f"#{n}" for n in r.front), style="bold")
    elif r.best_number is not None:
        t.add_section()
        t.add_row(f"best {r.metric}", f"{fmt_metric(r.metric, r.best_value)} (#{r.best_number})", style="bold")
        for k, v in r.best_params.items():
            t.add_row(f"  {k}", _param(v))
    console.print(t)
    if r.interrupted:
        console.print("interrupted: rerun the same command to resume (finished trials are kept)",
                      highlight=False, soft_wrap=True)
    elif r.front:
        console.print(f"next: {command('best', r.study_name)} (the front), then --retrain --trial N", highlight=False)
    elif r.best_number is not None and r.retrained_trial is None:
        console.print(f"next: {command('best', r.study_name, '--retrain')}", highlight=False)
    elif r.best_number is not None and r.retrained_trial == r.best_number:
        console.print(f"retrained already: {command('best', r.study_name)} shows the test result", highlight=False)
    elif r.best_number is not None:
        console.print(f"the best trial is now {r.best_number}; the retrain record is for trial {r.retrained_trial} "
                      f"({command('best', r.study_name, '--retrain', '--force')}: a new, counted test look)",
                      highlight=False)


def _param(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def best(console: Console, answer: BestAnswer, *, as_json: bool = False) -> None:
    """``hpsearch best``: the Pareto front or the best trial, then the retrain record if there is one."""
    if answer.front is not None:
        if as_json:
            print(front_json(answer.study, answer.objectives, answer.front, answer.record))
            return
        pareto_front(console, answer.study, answer.objectives, answer.front)
        if answer.record is not None:
            retrain_record(console, answer.record, fresh=False, looks=answer.looks)
        return
    assert answer.trial is not None
    if as_json:
        print(best_json(answer.study, answer.trial, answer.record, chosen_by(answer)))
        return
    label = "trial" if answer.multi or answer.where is not None else "best trial"
    best_trial(console, answer.study, answer.metric, answer.trial, label)
    why = chosen_by(answer)
    if why is not None:
        console.print(why["reason"], highlight=False, soft_wrap=True)
    if answer.record is None:
        console.print(f"not retrained yet: {command('best', answer.study, '--retrain')}", highlight=False)
        return
    retrain_record(console, answer.record, fresh=answer.looked, looks=answer.looks)
    if answer.stale:
        console.print(f"note: the best trial is now {answer.trial.number}; the record is for trial "
                      f"{answer.record['trial']} (--retrain --force retrains, a new look at the test split)",
                      highlight=False)


def best_trial(console: Console, study_name: str, metric: str, trial: FrozenTrial, label: str = "best trial") -> None:
    a = TrialRecord.of_trial(trial)
    size = f"{a.model or LEGACY_MODEL}, {'?' if a.n_params is None else a.n_params} params"
    if a.flops is not None:
        size += f", {_count(a.flops)} FLOPs"
    console.print(f"{study_name}: {label} {trial.number}, {metric} = {fmt_metric(metric, primary_value(trial))} "
                  f"({'?' if a.epochs is None else a.epochs} epochs, {size})", highlight=False, soft_wrap=True)
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column("param", style="bold")
    t.add_column("value")
    for k, v in trial.params.items():
        t.add_row(k, _param(v))
    console.print(t)


def pareto_front(console: Console, study_name: str, objectives: list[str], front: list[FrozenTrial]) -> None:
    """Several objectives: every trial no other beats on all of them, one row each."""
    console.print(f"{study_name}: Pareto front over {', '.join(objectives)} — {len(front)} trial"
                  f"{'s' if len(front) != 1 else ''} no other trial beats on every objective:",
                  highlight=False, soft_wrap=True)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("#", justify="right", no_wrap=True)
    for name in objectives:
        t.add_column(name, justify="right", no_wrap=True)
    t.add_column("parameters", ratio=1)  # wraps: a front's configs differ in many parameters
    for tr in front:
        values = [_count(int(v)) if name in ("params", "flops") else fmt_metric(name, v)
                  for name, v in zip(objectives, tr.values or [])]
        t.add_row(str(tr.number), *values, "  ".join(f"{k}={_param(v)}" for k, v in tr.params.items()))
    console.print(t)
    console.print(f"retrain one: {command('best', study_name, '--retrain', '--trial', 'N')}", highlight=False)


def front_json(study_name: str, objectives: list[str], front: list[FrozenTrial], rec: RetrainRecord | None) -> str:
    out: dict[str, Any] = {
        "study": study_name, "objectives": objectives,
        "front": [{"number": t.number, "values": dict(zip(objectives, t.values or [])), "params": dict(t.params)}
                  for t in front],
    }
    if rec is not None:
        out["retrain"] = _retrain_json(rec)
    return json.dumps(out, indent=2)


def retrain_record(console: Console, rec: RetrainRecord, *, fresh: bool, looks: int) -> None:
    """The retrain's tables; ``looks``: the study's count of test looks (``compare --test`` counts too)."""
    candidates = tables.retrain_candidates(rec)
    if candidates is not None:
        console.print("re-scored on the validation split (fresh seeds):", soft_wrap=True)
        console.print(tables.to_rich(candidates))
    on = " on train + validation (refit)" if rec["refit"] else ""
    console.print(f"trial {rec['trial']} retrained with {len(rec['seeds'])} seeds × {rec['epochs']} epochs{on}, "
                  "evaluated once on the test split:", soft_wrap=True, highlight=False)
    console.print(tables.to_rich(tables.retrain_seeds(rec)))
    validation = tables.retrain_validation(rec)
    if validation is not None:
        console.print(f"validation of each seed at its best epoch (by {rec['metric']}) and at its last:", soft_wrap=True,
                      highlight=False)
        console.print(tables.to_rich(validation))
    summary = tables.retrain_summary(rec)
    console.print(" · ".join(f"{label.split(' (')[0]} {cell.text()}" for label, cell in summary.rows
                             if isinstance(label, str) and isinstance(cell, tables.Num)),
                  highlight=False, soft_wrap=True)
    console.print(f"test split looked at {looks} time{'s' if looks != 1 else ''}"
                  + ("" if fresh else " (recorded result shown; --force evaluates again)")
                  + f"; checkpoints in {rec['runs'][0]['checkpoint'].rsplit('/', 1)[0]}/", highlight=False, soft_wrap=True)


def _has_config(trial: FrozenTrial) -> bool:
    try:
        config_of(trial)
    except KeyError:
        return False
    return True


def chosen_by(answer: BestAnswer) -> dict[str, Any] | None:
    """How the trial was chosen when not as the single best value: by its configuration's mean
    over seeds (a seed dimension), or as the row ``--where`` asked for. None otherwise."""
    c, trial = answer.configuration, answer.trial
    if c is None or trial is None:
        return None
    seeds = len(c.trials)
    stat = mean_std(summary(c.values), is_pct(answer.metric))
    trials = ", ".join(str(t.number) for t in c.trials)
    if answer.where is not None:
        row = ", ".join(f"{k}={v}" for k, v in answer.where.items())
        more = (f"; the row holds {answer.others + 1} configurations, this one has the best mean"
                if answer.others else "")
        reason = (f"the row {row}: {answer.metric} {stat} over {seeds} trial{'s' if seeds != 1 else ''} "
                  f"({trials}){more}; trial {trial.number} stands for it (its best seed)")
    else:
        reason = (f"chosen by the mean over seeds (the grid has a seed dimension): {answer.metric} {stat} "
                  f"over trials {trials}; trial {trial.number} is that configuration's best seed")
    return {"reason": reason, "where": answer.where, "params": c.params, "trials": [t.number for t in c.trials],
            **summary(c.values)}


def best_json(study_name: str, trial: FrozenTrial, rec: RetrainRecord | None,
              chosen: dict[str, Any] | None = None) -> str:
    out: dict[str, Any] = {
        "study": study_name,
        **({"chosen_by": chosen} if chosen is not None else {}),
        "best_trial": {"number": trial.number, "value": primary_value(trial),
                       "params": dict(trial.params),
                       "user_attrs": {**small_attrs(trial),
                                      **({"config": config_of(trial)} if _has_config(trial) else {})}},
    }
    if rec is not None:
        out["retrain"] = _retrain_json(rec)
    return json.dumps(out, indent=2)


def _retrain_json(rec: RetrainRecord) -> dict[str, Any]:
    """The record less its bulk (curves, sample predictions); each run gains its best epoch (by the
    study metric) and its validation metrics there (``val_at_best``), as the terminal's table."""
    out = {k: v for k, v in rec.items() if k not in ("runs",)}
    maximize = task_of(rec).directions().get(rec["metric"], "maximize") == "maximize"
    runs = []
    for r in rec["runs"]:
        run = {k: v for k, v in r.items() if k not in ("curves", "sample_predictions")}
        curves = r.get("curves") or {}
        best = best_epoch(curves.get(rec["metric"]) or [], maximize) if not rec.get("refit") else None
        if best is not None:
            run["best_epoch"] = best
            run["val_at_best"] = {k: c[best - 1] for k, c in curves.items() if k.startswith("val_") and len(c) >= best}
        runs.append(run)
    out["runs"] = runs
    return out


def studies(console: Console, lines: list[StudyLine]) -> None:
    """One block per study, packed into the terminal's width: name, metric, trials, best, retrain state."""
    if not lines:
        console.print("no studies yet; start one with `hpsearch run STUDY`")
        return
    for s in lines:
        states = " ".join(f"{k.lower()}={v}" for k, v in s.states.items()) or "no trials"
        arrows = {"maximize": "↑", "minimize": "↓"}
        metric = ", ".join(f"{m} {arrows.get(d, '')}".strip() for m, d in zip(s.metrics, s.direction.split(",")))
        best = (f"Pareto front {s.front} trial{'s' if s.front != 1 else ''}" if s.front is not None else
                f"best {fmt_metric(s.metrics[0] if s.metrics else '', s.best_value)} (#{s.best_trial})" if s.best_trial is not None else "best —")
        for line in pack([s.name, metric, states, best, s.retrain], console.width):
            console.print(line, highlight=False, overflow="fold")


def trials(console: Console, listing: Listing, fmt: str) -> None:
    """``hpsearch trials``: JSON rows, CSV with every column, or a table that fits the terminal."""
    rows = listing.rows
    if fmt == "json":
        console.print_json(json.dumps(rows))
        return
    if fmt == "csv":
        head = listing.columns or _csv_head(listing)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["value" if h == "value" else h for h in head])
        for r in rows:
            w.writerow(["" if (v := _csv_value(r, h, listing)) is None else v for h in head])
        print(buf.getvalue(), end="")
        return
    if not rows:
        console.print(f"no trials to list ({listing.total} in the study; check --state)", highlight=False)
        return
    base = listing.columns or _default_columns(listing)
    used = [p for p in listing.params if any(r["params"].get(p) is not None for r in rows)]  # conditional ones
    shown = base if listing.columns else _fitting(console, listing, base, used)
    if _measure(console, listing, shown) > console.width or (used and shown == base and not listing.columns):
        # not even the fixed columns and one parameter fit: one block per trial, every parameter in it
        _vertical(console, listing, shown)
        return
    console.print(_table(listing, shown))
    hidden = [p for p in used if p not in shown] if listing.columns is None else []
    if hidden:
        less = " less important" if listing.ranked_over else ""  # by importance (views.listing.by_importance)
        console.print(_names_line(f"+{len(hidden)}{less} parameters not shown:", hidden, "(--columns, --format csv)",
                                  console.width), highlight=False, style="dim")


def _csv_head(listing: Listing) -> list[str]:
    """CSV keeps its columns across versions (value, not the metric's name); parameters in space order."""
    head = ["number", "state", "model", "value", "epochs", "seconds", "n_params", "flops"]
    if len(listing.objectives) > 1:
        head.insert(head.index("value") + 1, "values")
    return head + listing.params


def _csv_value(row: dict[str, Any], column: str, listing: Listing) -> Any:
    if column == "values":
        return " / ".join(_cell(v) for v in row.get("values") or [])
    if column in ("n_params", "value"):
        return row[column]
    return value_of(row, column, listing.objectives)


def _default_columns(listing: Listing) -> list[str]:
    cols = ["number", "state", *listing.objectives, "epochs", "seconds", "params"]
    if len({r["model"] for r in listing.rows if r["model"]}) > 1:
        cols.append("model")
    return cols


_HEAD = {"number": "#", "seconds": "sec", "epochs": "ep"}
_RIGHT = {"number", "epochs", "seconds", "params", "flops"}


def _text(row: dict[str, Any], column: str, listing: Listing) -> str:
    v = value_of(row, column, listing.objectives)
    if column in listing.objectives:
        return fmt_metric(column, v) if v is not None else ""
    if column == "state":
        return str(v).lower()
    if column in ("params", "flops"):
        return _count(v)
    if column == "seconds":
        return "" if v is None else f"{v:.1f}"
    return _cell(v)


def _table(listing: Listing, columns: list[str]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for col in columns:
        t.add_column(_HEAD.get(col, col), no_wrap=True,
                     justify="right" if col in _RIGHT or col in listing.objectives else "left")
    for r in listing.rows:
        t.add_row(*[_text(r, c, listing) for c in columns])
    return t


def _measure(console: Console, listing: Listing, columns: list[str]) -> int:
    return console.measure(_table(listing, columns), options=console.options.update_width(10_000)).maximum


def _fitting(console: Console, listing: Listing, base: list[str], params: list[str]) -> list[str]:
    """The base columns, then parameters in space order while the table stays within the terminal."""
    shown = list(base)
    for p in params:
        if _measure(console, listing, [*shown, p]) > console.width:
            break
        shown.append(p)
    return shown


def _vertical(console: Console, listing: Listing, columns: list[str]) -> None:
    """One block per trial, ``name value`` pairs packed into lines: for terminals too narrow for a table."""
    width = console.width
    for r in listing.rows:
        pairs = [f"#{r['number']}"] + [f"{_HEAD.get(c, c)} {_text(r, c, listing)}" for c in columns
                                       if c != "number" and _text(r, c, listing)]
        pairs += [f"{p} {_text(r, p, listing)}" for p in listing.params if p not in columns and _text(r, p, listing)]
        for line in pack(pairs, width):
            console.print(line, highlight=False, overflow="fold")


def _names_line(head: str, names: list[str], tail: str, width: int) -> str:
    """``head a, b, … tail`` with as many names as fit in ``width`` (whole names only)."""
    for n in range(len(names), 0, -1):
        line = f"{head} {', '.join(names[:n])}{', …' if n < len(names) else ''} {tail}"
        if len(line) <= width:
            return line
    return f"{head} … {tail}" if len(head) + len(tail) + 3 <= width else head


def _count(v: int | None) -> str:
    """Parameters and FLOPs in a narrow column: 2.75k, 1.3M, 4.1G."""
    if v is None:
        return ""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g}{unit}"
    return str(v)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def comparison(console: Console, c: dict[str, Any]) -> None:
    """``hpsearch compare``: one row per group (best validation mean first, or the grid's order),
    then the command that retrains the best row's configuration."""
    pct = is_pct(c["metric"])
    asked: list[str] = c.get("metrics") or []
    at, stat = c.get("at", "best"), c.get("stat", "mean")
    title = f"{c['study']}: {', '.join(asked) if asked else c['metric']} by {', '.join(c['by'])}"
    if asked:
        title += f" ({'mean ± std' if stat == 'mean' else stat} over each row's trials; curves at each trial's " \
                 f"{'best epoch of ' + c['metric'] if at == 'best' else 'last epoch'})"
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left")
    for name in c["by"]:
        table.add_column(name)
    tested = "test_look" in c
    test_key = "test_" + c["metric"].removeprefix("val_")  # the study metric, on the test split
    test_head = [f"{test_key.replace('_', ' ').replace('top1', 'top-1')} mean ± std"] if tested else []
    heads = (["n", *asked, *test_head] if asked else
             ["n", f"{c['metric']} mean ± std", *test_head, "epoch best/final", "sec", "params"])
    for head in heads:
        table.add_column(head, justify="right")
    for g in c["groups"]:
        test = [mean_std(g["test"].get(test_key), is_pct(test_key))] if tested else []
        params = [_param(g["params"][p]) for p in c["by"]]
        if asked:
            table.add_row(*params, str(g["n"]), *(_measured(m, g["metrics"][m], stat) for m in asked), *test)
            continue
        epochs = f"{_f(g['best_epoch'], 1)}/{_f(g['final_epoch'], 0)}"
        table.add_row(*params, str(g["n"]), mean_std(g, pct), *test, epochs,
                      _f(g["seconds"], 1), _count(None if g["n_params"] is None else int(g["n_params"])))
    console.print(table)
    if tested:
        console.print(f"test split: look {c['test_look']} at this study's test split (every look is counted; "
                      f"choosing a row by its test score is tuning on the test split). Each trial was retrained "
                      f"from its recorded seed; {c['reproduced']} reproduced the search's validation score "
                      "exactly.", highlight=False)
    if c["left_out"]:
        left = ", ".join(f"{n} {s.lower()}" for s, n in sorted(c["left_out"].items()))
        console.print(f"left out (not trained to the end): {left}", highlight=False)
    top = c["groups"][c.get("top", 0)]
    where = ",".join(f"{p}={where_text(top['params'][p])}" for p in c["by"])
    again = ["--force"] if c.get("retrained") else []
    console.print(f"best row by validation mean: {where}; retrain its configuration with fresh seeds and look at "
                  f"the test split once: {command('best', c['study'], '--retrain', '--where', where, *again)}"
                  + (" (the study was retrained before: --force makes a new, counted look)" if again else ""),
                  highlight=False, soft_wrap=True)


def where_text(value: Any) -> str:
    """A parameter value as ``--where`` reads it back (:func:`hpsearch.store.queries.matches`)."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _measured(name: str, s: dict[str, Any], stat: str) -> str:
    """One ``--metrics`` cell: mean ± std (or the min / max) in the metric's own unit."""
    if name in ("n_params", "n_trainable", "flops"):
        v = s.get(stat)
        return _count(None if v is None else int(v))
    if name in ("seconds", "epochs", "best_epoch"):
        return _f(s.get(stat), 1)
    if stat == "mean":
        return mean_std(s if s.get("mean") is not None else None, is_pct(name))
    return Num(s.get(stat), pct=is_pct(name)).text()


def layer_table(console: Console, t: LayerTable) -> None:
    """``hpsearch inspect``: one row per layer — output shape for one image, parameters, FLOPs."""
    frozen = t.params != t.trainable
    console.print(f"{t.study}: trial {t.trial} ({t.chosen}), {t.model.get('name', 'model')} on "
                  f"{'×'.join(map(str, t.input))} images", highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for head, right in (("layer", False), ("type", False), ("output", False), ("params", True),
                        *((("frozen", True),) if frozen else ()), ("FLOPs", True)):
        table.add_column(head, justify="right" if right else "left", no_wrap=head != "layer")
    for r in t.rows:
        shape = "×".join(map(str, r.output[1:])) if r.output else "—"  # one image: the batch dimension left out
        table.add_row(r.name, r.kind, shape, f"{r.params:,}", *([f"{r.params - r.trainable:,}"] if frozen else []),
                      _count(r.flops))
    console.print(table)
    kept = f"{t.trainable:,} trainable, {t.params - t.trainable:,} frozen" if frozen else "all trainable"
    console.print(f"{t.params:,} parameters ({kept}) · {_count(t.flops)} FLOPs per image (a multiply-add is 2) · "
                  f"{len(t.rows)} layers", highlight=False, soft_wrap=True)
