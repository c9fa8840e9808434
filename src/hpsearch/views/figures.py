"""Plotly figures of a study and of its retrain record (no HTML, no I/O: see ``report``).

Where ``optuna.visualization`` already draws a plot we use it. We draw our own only where a
search service needs something it lacks: learning curves coloured by pruned vs completed, a
timeline per *worker* (not per trial), and everything made from the retrain record — which
was computed during the one test evaluation, so nothing here ever touches the test split.
"""

from __future__ import annotations

import base64
import math
import statistics
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from plotly.graph_objects import Figure
from plotly.subplots import make_subplots

from hpsearch.fmt import is_pct
from hpsearch.store.queries import objective_names
from hpsearch.store.records import RetrainRecord, TrialRecord, curves_of_trial, task_of
from hpsearch.study.samplers import SEED_PARAM
from hpsearch.views.importance import RELIABLE_TRIALS, Importances, param_importances

STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#b0b0b0", "FAIL": "#d62728", "RUNNING": "#2ca02c",
                "WAITING": "#9467bd"}



class NotAvailable(Exception):
    """A plot that cannot be drawn for this study; the message says why (shown in its place)."""


def _quiet(draw: Callable[[], Figure]) -> Figure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return draw()


def _completed(study: optuna.Study, at_least: int = 1) -> list[FrozenTrial]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < at_least:
        raise NotAvailable(f"needs at least {at_least} completed trial{'s' if at_least > 1 else ''}; "
                           f"this study has {len(done)}")
    return done


def _target(study: optuna.Study) -> dict[str, Any]:
    """Optuna's plots take one objective: with several, plot the study metric (the first). The
    axis is named after the metric, never Optuna's "Objective Value"."""
    name = _metric_name(study)
    if len(study.directions) == 1:
        return {"target_name": name}
    return {"target": lambda t: t.values[0], "target_name": name}


def _metric_name(study: optuna.Study) -> str:
    """The study metric's name as the axes show it (stored names, else the settings' metric)."""
    return objective_names(study)[0]


def _maximize(study: optuna.Study) -> bool:
    return study.directions[0] == StudyDirection.MAXIMIZE


def _score_colours(study: optuna.Study) -> dict[str, Any]:
    """One colour scale for "score" everywhere: Viridis (no near-white end), yellow = better."""
    return {"colorscale": "Viridis", "reversescale": not _maximize(study)}


def optimization_history(study: optuna.Study) -> Figure:
    _completed(study)
    return _quiet(lambda: optuna.visualization.plot_optimization_history(study, **_target(study)))


def pareto_front(study: optuna.Study) -> Figure:
    """Several objectives: every completed trial, the front highlighted (2 or 3 objectives)."""
    _completed(study)
    if not 2 <= len(study.directions) <= 3:
        raise NotAvailable(f"a Pareto plot draws 2 or 3 objectives; this study has {len(study.directions)}")
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return _quiet(lambda: optuna.visualization.plot_pareto_front(study, target_names=names))


def _is_log(dist: BaseDistribution) -> bool:
    return isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log


def _params(done: list[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Every parameter of the completed trials (conditional ones too), in the order first asked;
    not a grid's ``seed``: seeds are replicates, not a setting (an axis of them is noise)."""
    dists: dict[str, BaseDistribution] = {}
    for t in done:
        for p, d in t.distributions.items():
            if p != SEED_PARAM:
                dists.setdefault(p, d)
    return dists


def _varied(done: list[FrozenTrial], dists: dict[str, BaseDistribution]) -> list[str]:
    return [p for p in dists if len({repr(t.params.get(p)) for t in done}) > 1]


def _short(v: Any, width: int = 12) -> str:
    text = f"{v:.3g}" if isinstance(v, float) else str(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """At most ``n`` round tick values spanning [lo, hi] (1, 2, 2.5, 5 × a power of ten)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


NOT_ASKED = "not asked"  # a conditional parameter a trial never sampled (momentum without SGD)
_ABSENT = object()  # such a trial's value (None can be a real categorical choice)


def _parcoords_dim(label: str, dist: BaseDistribution, values: list[Any]) -> dict[str, Any]:
    """One axis of the parallel-coordinates plot with at most ~6 short tick labels: log parameters
    on a log10 axis ticked at powers of ten, categories by name, a missing value at the bottom."""
    missing = [v is _ABSENT for v in values]
    if isinstance(dist, CategoricalDistribution):
        cats = [str(c) for c in dist.choices] + ([NOT_ASKED] if any(missing) else [])
        codes = [cats.index(NOT_ASKED if v is _ABSENT else str(v)) for v in values]
        return {"label": label, "values": codes, "tickvals": list(range(len(cats))),
                "ticktext": [_short(c) for c in cats], "range": [-0.3, len(cats) - 0.7]}
    log = _is_log(dist)
    present = [math.log10(v) if log else float(v) for v in values if v is not _ABSENT]
    lo, hi = (min(present), max(present)) if present else (0.0, 1.0)
    if log:
        ticks: list[float] = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)) or [lo, hi]
        text = [f"1e{t}" if isinstance(t, int) else f"{10 ** t:.2g}" for t in ticks]
    else:
        ticks = _nice_ticks(lo, hi)
        text = [_short(t) for t in ticks]
    span = max(hi - lo, 1e-12)
    bottom = lo - 0.12 * span  # where "not asked" sits, below the sampled range
    coded = [bottom if v is _ABSENT else (math.log10(v) if log else float(v)) for v in values]
    if any(missing):
        ticks, text = [bottom, *ticks], [NOT_ASKED, *text]
    return {"label": label + (" (log)" if log else ""), "values": coded, "tickvals": ticks, "ticktext": text,
            "range": [min(coded), hi]}


def parallel_coordinates(study: optuna.Study) -> Figure:
    """One line per completed trial across the varied parameters, coloured by score (Viridis:
    the worst trials stay visible, unlike Optuna's white-to-blue scale)."""
    done = _completed(study, 2)
    dists = _params(done)
    varied = _varied(done, dists)
    if not varied:
        raise NotAvailable("every completed trial has the same parameters")
    metric = _metric_name(study)
    scores = [t.values[0] for t in done]
    dims = [{"label": metric, "values": scores, "tickformat": ".1%" if is_pct(metric) else ".3g"}]
    dims += [_parcoords_dim(p, dists[p], [t.params.get(p, _ABSENT) for t in done]) for p in varied]
    fig = go.Figure(go.Parcoords(
        line={"color": scores, **_score_colours(study), "showscale": True,
              "colorbar": {"title": metric, "tickformat": ".1%" if is_pct(metric) else None}},
        dimensions=dims, labelangle=-25, labelside="top", labelfont={"size": 12}, tickfont={"size": 10},
        rangefont={"size": 1, "color": "rgba(0,0,0,0)"}))
    fig.update_layout(title=f"Parallel coordinates: {len(done)} completed trials, coloured by {metric}",
                      margin={"t": 140, "l": 60, "r": 40}, height=520)
    return fig


def importances(study: optuna.Study, imp: Importances | None = None) -> Figure:
    """PED-ANOVA importances, as optuna-dashboard computes them (see ``hpsearch.views.importance``)."""
    done = _completed(study, 2)
    varied = _varied(done, _params(done))
    if not varied:
        raise NotAvailable("no parameter varies across the completed trials")
    if len({t.values[0] for t in done}) < 2:
        raise NotAvailable("every completed trial has the same score, so no parameter explains any of it")
    imp = imp or param_importances(study)
    if not imp.values or not any(imp.values.values()):
        raise NotAvailable("PED-ANOVA found no parameter that sets the best trials apart")
    names = list(imp.values)[::-1]  # largest at the top of a horizontal bar chart
    metric = _metric_name(study)
    fig = go.Figure(go.Bar(x=[imp.values[n] for n in names], y=names, orientation="h", marker_color="#1f77b4",
                           text=[f"{imp.values[n]:.2f}" for n in names], textposition="outside",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    caveat = "" if imp.reliable else f" — not reliable below {RELIABLE_TRIALS}"
    fig.update_layout(title=f"Importance for {metric}: PED-ANOVA over {imp.completed} completed trials "
                            f"(top {imp.top_trials}){caveat}",
                      xaxis={"title": "importance (normalised, sums to 1)", "rangemode": "tozero"},
                      yaxis={"title": None}, height=max(320, 26 * len(names) + 160))
    return fig


SLICE_COLS = 4  # panels per row: a 1,200-px page shows each at ~280 px


def slices(study: optuna.Study) -> Figure:
    """Score against each parameter, one panel per parameter in a grid that wraps (log axes for
    log-scale parameters, categories by name), every panel on the same score axis and colour."""
    done = _completed(study)
    dists = _params(done)
    if not dists:
        raise NotAvailable("the completed trials have no parameters")
    metric = _metric_name(study)
    names = list(dists)
    rows = -(-len(names) // SLICE_COLS)
    fig = make_subplots(rows=rows, cols=SLICE_COLS, subplot_titles=names, shared_yaxes="all",
                        horizontal_spacing=0.03, vertical_spacing=min(0.12, 0.5 / rows))
    for i, p in enumerate(names):
        row, col = i // SLICE_COLS + 1, i % SLICE_COLS + 1
        mine = [t for t in done if p in t.params]
        d = dists[p]
        x = [str(t.params[p]) for t in mine] if isinstance(d, CategoricalDistribution) else [t.params[p] for t in mine]
        fig.add_trace(go.Scatter(
            x=x, y=[t.values[0] for t in mine], mode="markers", showlegend=False,
            marker={"color": [t.values[0] for t in mine], "coloraxis": "coloraxis", "size": 7,
                    "line": {"width": 0.5, "color": "#444"}},
            text=[f"trial {t.number}" for t in mine],
            hovertemplate=f"%{{text}}<br>{p}: %{{x}}<br>{metric}: %{{y:{_hover(metric)}}}<extra></extra>"), row=row, col=col)
        if isinstance(d, CategoricalDistribution):
            fig.update_xaxes(type="category", categoryorder="array", categoryarray=[str(c) for c in d.choices],
                             row=row, col=col)
        elif _is_log(d):
            fig.update_xaxes(type="log", exponentformat="e", row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text=metric, row=row, col=col)
    fig.update_yaxes(tickformat=".1%" if is_pct(metric) else None)
    fig.update_layout(title=f"{metric} against each parameter ({len(done)} completed trials; log axes for "
                            "log-scale parameters)",
                      coloraxis={**_score_colours(study),
                                 "colorbar": {"title": metric, "tickformat": ".1%" if is_pct(metric) else None}},
                      height=240 * rows + 120, margin={"l": 60, "r": 20})
    return fig


def learning_curves(study: optuna.Study, metric: str) -> Figure:
    """Every trial's per-epoch validation score, completed trials in colour, pruned in grey."""
    trials = [t for t in study.get_trials(deepcopy=False) if _epochs(t, metric)]
    if not trials:
        raise NotAvailable("no trial has reported an epoch yet")
    single = len(study.directions) == 1  # several objectives have no one best trial to mark
    best = study.best_trial.number if single and any(t.state == TrialState.COMPLETE for t in trials) else None
    fig = go.Figure()
    seen: set[str] = set()
    for t in sorted(trials, key=lambda t: t.state == TrialState.COMPLETE):  # completed drawn on top
        values = _epochs(t, metric)
        steps = sorted(values)
        state = t.state.name
        is_best = t.number == best
        fig.add_trace(go.Scatter(
            x=steps, y=[values[s] for s in steps], mode="lines+markers",
            name=f"best (trial {t.number})" if is_best else state.lower(),
            legendgroup="best" if is_best else state, showlegend=is_best or state not in seen,
            line={"color": "#ff7f0e" if is_best else STATE_COLORS.get(state, "#333"), "width": 3 if is_best else 1},
            marker={"size": 4}, hovertemplate=f"trial {t.number} ({state.lower()})<br>epoch %{{x}}: %{{y:{_hover(metric)}}}"
                                              "<extra></extra>"))
        seen.add(state)
    zoom = _better_half(study, [t for t in trials if t.state == TrialState.COMPLETE], metric)
    fig.update_layout(title=f"Learning curves: {metric} per epoch", xaxis_title="epoch", yaxis_title=metric,
                      yaxis={"tickformat": ".1%" if is_pct(metric) else None})
    if zoom is not None:
        fig.update_layout(yaxis={"range": zoom, "autorange": False}, updatemenus=[{
            "type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.13, "yanchor": "bottom",
            "showactive": True, "active": 0, "buttons": [
                {"label": "zoom: better three quarters", "method": "relayout",
                 "args": [{"yaxis.range": zoom, "yaxis.autorange": False}]},
                {"label": "full range", "method": "relayout", "args": [{"yaxis.autorange": True}]}]}])
    return fig


def _better_half(study: optuna.Study, done: list[FrozenTrial], metric: str) -> list[float] | None:
    """The y range from the lower quartile of the completed trials' final scores (upper for a
    loss) to the best score any of them reached, with a margin: where the better three quarters
    differ. None (full range) when there is nothing to zoom to."""
    finals = [v[max(v)] for v in (_epochs(t, metric) for t in done) if v]
    if len(finals) < 2:
        return None
    every = [x for t in done for x in _epochs(t, metric).values()]
    q1, _, q3 = statistics.quantiles(finals, n=4, method="inclusive")
    lo, hi = (q1, max(every)) if _maximize(study) else (min(every), q3)
    if hi - lo <= 1e-12:
        return None
    pad = 0.06 * (hi - lo)
    return [lo - pad, hi + pad]


def _epochs(t: FrozenTrial, metric: str) -> dict[int, float]:
    """A trial's metric by epoch: what it reported to the pruner, or (a multi-objective trial
    reports nothing) its recorded curve."""
    if t.intermediate_values:
        return dict(t.intermediate_values)
    curve = curves_of_trial(t).get(metric) or []
    return {i: v for i, v in enumerate(curve, 1) if v is not None}


def size_vs_score(study: optuna.Study, metric: str) -> Figure:
    """Score against parameters and FLOPs, the trade-off a ``max_params`` limit cuts."""
    done = [(t, r) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and (r := TrialRecord.of_trial(t)).n_params]
    if not done:
        raise NotAvailable("no completed trial has a recorded size yet")
    has_flops = any(r.flops for _, r in done)
    fig = make_subplots(rows=1, cols=2 if has_flops else 1, shared_yaxes=True,
                        subplot_titles=["parameters", "FLOPs per image"] if has_flops else ["parameters"])
    palette = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    models = sorted({str(r.model) for _, r in done})
    for i, model in enumerate(models):
        mine = [(t, r) for t, r in done if str(r.model) == model]
        for col, key in enumerate(["n_params", "flops"][: 2 if has_flops else 1], start=1):
            pts = [(t, size) for t, r in mine if (size := r.n_params if key == "n_params" else r.flops)]
            fig.add_trace(go.Scatter(
                x=[size for _, size in pts], y=[t.values[0] for t, _ in pts], mode="markers", name=model,
                legendgroup=model, showlegend=col == 1, marker={"color": palette[i % len(palette)], "size": 7},
                text=[f"trial {t.number}" for t, _ in pts],
                hovertemplate=f"%{{text}} ({model})<br>{key}: %{{x:,}}<br>{metric}: %{{y:{_hover(metric)}}}<extra></extra>"),
                row=1, col=col)
            fig.update_xaxes(type="log", row=1, col=col)
    fig.update_layout(title=f"{metric} against model size", yaxis_title=metric)
    return fig


def worker_timeline(study: optuna.Study) -> Figure:
    """One row per worker process: when each of its trials ran, coloured by outcome."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start is not None]
    if not trials:
        raise NotAvailable("no trial has started yet")
    fig = go.Figure()
    seen: set[str] = set()
    for t in trials:
        start = t.datetime_start
        if start is None:
            continue
        end = t.datetime_complete or start
        state = t.state.name
        worker = TrialRecord.of_trial(t).worker or "unknown"
        fig.add_trace(go.Bar(
            base=[start.isoformat()], x=[max((end - start).total_seconds() * 1000, 1.0)],
            y=[worker], orientation="h", name=state.lower(), legendgroup=state, showlegend=state not in seen,
            marker_color=STATE_COLORS.get(state, "#333"),
            hovertemplate=f"trial {t.number} ({state.lower()}), {(end - start).total_seconds():.1f}s"
                          "<extra></extra>"))
        seen.add(state)
    fig.update_layout(title="Worker timeline: which worker ran which trial, when", barmode="overlay",
                      xaxis={"type": "date", "title": "time"}, yaxis={"title": "worker (host:pid)"},
                      height=max(300, 60 * len({TrialRecord.of_trial(t).worker for t in trials}) + 150))
    return fig


def retrain_curves(rec: RetrainRecord) -> Figure:
    """Per-seed learning curves of the retrained models: loss (train, val) and the task's headline
    validation metric (top-1 for classify, PSNR for reconstruct, F1 for segment)."""

    head = task_of(rec).headline_column(rec)
    train_key = f"train_{head.key}"
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (solid: train, dashed: validation)",
                                                        f"{head.label} (solid: validation, dotted: train)"
                                                        if head.key == "top1" else f"validation {head.label}"))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for i, r in enumerate(rec["runs"]):
        c = r.get("curves") or {}
        color = palette[i % len(palette)]
        epochs = list(range(1, len(c.get("train_loss", [])) + 1))
        label = f"seed {r['seed']}"
        fig.add_trace(go.Scatter(x=epochs, y=c.get("train_loss"), name=label, legendgroup=label,
                                 line={"color": color}), row=1, col=1)
        fig.add_trace(go.Scatter(x=epochs, y=c.get("val_loss"), name=label, legendgroup=label, showlegend=False,
                                 line={"color": color, "dash": "dash"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=epochs, y=c.get(f"val_{head.key}"), name=label, legendgroup=label,
                                 showlegend=False, line={"color": color}), row=1, col=2)
        if c.get(train_key):  # recorded since 0.3: the gap to validation is the overfitting
            fig.add_trace(go.Scatter(x=epochs, y=c[train_key], name=label, legendgroup=label, showlegend=False,
                                     line={"color": color, "dash": "dot"}), row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    losses = [v for r in rec["runs"] for k in ("train_loss", "val_loss") for v in (r.get("curves") or {}).get(k) or []
              if v is not None]
    log = bool(losses) and min(losses) > 0  # a loss falls by decades: a linear axis flattens all but epoch 1
    fig.update_yaxes(title_text="loss (log)" if log else "loss", type="log" if log else None, row=1, col=1)
    fig.update_yaxes(title_text=head.label, tickformat=".1%" if head.pct else None, row=1, col=2)
    fig.update_layout(title=f"Retrained trial {rec['trial']}: {len(rec['runs'])} seeds")
    return fig


def confusion_counts(rec: RetrainRecord) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mean confusion matrix over the retrained seeds, and each seed's (empty for records
    written before per-seed matrices were kept: their sum over the number of seeds is the mean)."""
    per_seed = [np.asarray(m, dtype=float) for m in rec.get("confusion_per_seed") or []]
    mean = np.asarray(rec["confusion"], dtype=float) / max(1, len(rec["runs"]))
    return mean, per_seed


def confusion(rec: RetrainRecord) -> Figure:
    """Test confusion matrix, the mean over the retrained seeds (rows: true class; each row sums to
    that class's test images), with a menu for each seed's own matrix where the record has them."""
    mean, per_seed = confusion_counts(rec)
    classes = [str(c) for c in rec["classes"]]
    n = len(rec["runs"])

    def cells(m: np.ndarray) -> dict[str, Any]:
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        text = [[f"{v:.0f}" if abs(v - round(v)) < 0.05 else f"{v:.1f}" for v in row] for row in m]
        return {"z": share, "customdata": m, "text": text}

    fig = go.Figure(go.Heatmap(
        x=classes, y=classes, colorscale="Blues", zmin=0, zmax=1, texttemplate="%{text}", **cells(mean),
        hovertemplate="true %{y}, predicted %{x}: %{customdata:.1f} images (%{z:.1%} of the row)<extra></extra>",
        colorbar={"title": "share of row", "tickformat": ".0%"}))
    seeds = [r["seed"] for r in rec["runs"]]
    if len(per_seed) == n > 1:
        options = [(f"mean of {n} seeds", mean)] + [(f"seed {s}", m) for s, m in zip(seeds, per_seed)]
        fig.update_layout(updatemenus=[{
            "type": "dropdown", "x": 1, "xanchor": "right", "y": 1.08, "yanchor": "bottom", "active": 0,
            "buttons": [{"label": label, "method": "restyle",
                         "args": [{k: [v] for k, v in cells(m).items()}]} for label, m in options]}])
    fig.update_layout(title=f"Test confusion matrix: mean over {n} seed{'s' if n != 1 else ''}' models, "
                            f"{mean.sum():.0f} test images",
                      xaxis={"title": "predicted", "side": "bottom", "type": "category"},
                      yaxis={"title": "true", "autorange": "reversed", "type": "category"},
                      height=max(420, 40 * len(classes) + 200))
    return fig


def _image_grid(pixels: np.ndarray, titles: list[str], colours: list[str], cols: int, hover: list[str]) -> Figure:
    rows = max(1, -(-len(pixels) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=min(0.08, 0.3 / rows))
    for i, img in enumerate(pixels):
        fig.add_trace(go.Image(z=_rgb(img), hovertemplate=f"{hover[i]}<extra></extra>"), row=i // cols + 1,
                      col=i % cols + 1)
    for ann, colour in zip(fig.layout.annotations, colours):
        ann.font = {"size": 10, "color": colour}
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=135 * rows + 120, margin={"l": 10, "r": 10})
    return fig


def mistakes(rec: RetrainRecord, cols: int = 10) -> Figure:
    """The test images the first seed's model got wrong, those most seeds got wrong first, each
    titled with its prediction, the true label and how many of the seeds' models missed it."""
    kept = rec.get("mistakes")
    if kept is None:
        raise NotAvailable("this retrain record keeps no misclassified images (retrained before hpsearch kept them)")
    n = len(kept["indices"])
    if n == 0:
        raise NotAvailable(f"the seed-{rec['runs'][0]['seed']} model classified every test image correctly")
    pixels = _decode(kept, "pixels", tuple(kept["shape"]))
    classes = [str(c) for c in rec["classes"]]
    titles = [f"{classes[p]} (true {classes[y]}) {w}/{kept['models']}"
              for p, y, w in zip(kept["predicted"], kept["labels"], kept["wrong_in"])]
    fig = _image_grid(pixels, titles, ["#d62728"] * n, cols, [f"test image {i}" for i in kept["indices"]])
    total = kept["total"]
    fig.update_layout(title=f"{n} of the seed-{rec['runs'][0]['seed']} model's {total} test mistakes "
                            f"(k/{kept['models']}: how many seeds' models missed it)")
    return fig


def sample_images(rec: RetrainRecord, rows: int = 3, cols: int = 10) -> Figure:
    """Older records kept the first test images only: those, with the first seed's prediction."""
    samples = rec.get("samples")
    if not samples:
        raise NotAvailable("this retrain record has no sample images (retrained by an older hpsearch: "
                           "`hpsearch best STUDY --retrain --force` records them, a new look at the test split)")
    n, c, h, w = samples["shape"]
    pixels = _decode(samples, "pixels", (n, c, h, w))
    run = rec["runs"][0]
    preds, labels, classes = run["sample_predictions"], samples["labels"], [str(x) for x in rec["classes"]]
    n = min(n, rows * cols, len(preds))
    titles = [classes[preds[i]] if preds[i] == labels[i] else f"{classes[preds[i]]} (true {classes[labels[i]]})"
              for i in range(n)]
    colours = ["#222" if preds[i] == labels[i] else "#d62728" for i in range(n)]
    fig = _image_grid(pixels[:n], titles, colours, cols, [f"test image {i}" for i in range(n)])
    wrong = sum(preds[i] != labels[i] for i in range(n))
    fig.update_layout(title=f"First {n} test images, predicted by the seed-{run['seed']} model "
                            f"({wrong} mistake{'s' if wrong != 1 else ''}, in red with the true label)")
    return fig


def first_layer_filters(rec: RetrainRecord, max_filters: int = 64) -> Figure:
    """The first convolution's kernels of the first seed's model, apart from each other. Grey
    input: one colour scale for all (symmetric around 0, with its colour bar), so a filter's
    strength reads against the others; RGB: each filter min–max scaled on its own (said so)."""
    layer = rec.get("first_layer")
    if not layer:
        raise NotAvailable("this retrain record has no first-layer weights (retrained by an older hpsearch)")
    f, c, kh, kw = layer["shape"]
    w = np.asarray(layer["weights"], dtype=float).reshape(f, c, kh, kw)[:max_filters]
    n = len(w)
    cols = min(n, 16)
    rows = -(-n // cols)
    lim = max(float(np.abs(w.mean(axis=1)).max()), 1e-12)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.012, vertical_spacing=0.12 / max(rows, 1))
    for i, k in enumerate(w):
        if c == 3:
            lo, hi = k.min(), k.max()
            rgb = ((k - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8).transpose(1, 2, 0)
            trace: go.BaseTraceType = go.Image(z=rgb, hovertemplate=f"filter {i}<extra></extra>")
        else:
            trace = go.Heatmap(z=k.mean(axis=0), coloraxis="coloraxis", xgap=1, ygap=1,
                               hovertemplate=f"filter {i}: %{{z:.3f}}<extra></extra>")
        fig.add_trace(trace, row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for i in range(n):  # square pixels in every cell
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    if c == 3:
        note = "RGB, each filter min–max scaled on its own"
    else:
        mean = " (mean over input channels)" if c > 1 else ""
        note = f"weight{mean}, one scale for all: red positive, blue negative"
        fig.update_layout(coloraxis={"colorscale": "RdBu_r", "cmin": -lim, "cmax": lim,
                                     "colorbar": {"title": "weight", "thickness": 12}})
    fig.update_layout(title=f"First-layer filters ({f} × {c}×{kh}×{kw}, seed {layer['seed']}; {note})",
                      height=int(1100 / cols * rows) + 120, margin={"l": 10, "r": 10})
    return fig


def _hover(metric: str) -> str:
    """A hovered value in the metric's own unit (accuracies as percentages), as the axes show it."""
    return ".2%" if is_pct(metric) else ".4f"


def group_curves(groups: list[Any], metric: str, train: str | None = None) -> Figure:
    """Each compared group's mean curve of ``metric`` with a ± std band over its trials (seeds),
    groups overlaid in one plot; with ``train`` (``train_top1`` beside ``val_top1``), the training
    pass's curve too, dashed in the group's colour: train beside validation, the reports' plot."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    hover = ".2%" if is_pct(metric) else ".4f"
    fig = go.Figure()
    for i, g in enumerate(groups):
        name = ", ".join(f"{k}={v}" for k, v in g.params.items())
        colour = palette[i % len(palette)]
        for key, dash in ((metric, "solid"), *([(train, "dash")] if train else [])):
            curves = [c for c in g.curves(key) if c and all(v is not None for v in c)]
            if not curves:
                continue
            n = min(len(c) for c in curves)  # the epochs every trial of the group reached
            a = np.asarray([c[:n] for c in curves], dtype=float)
            mean, std = a.mean(axis=0), a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(n)
            epochs = list(range(1, n + 1))
            label = f"{name} (n={len(a)})" if key == metric else f"{name}: {key}"
            fig.add_trace(go.Scatter(x=epochs + epochs[::-1], y=list(mean + std) + list((mean - std)[::-1]),
                                     fill="toself", fillcolor=colour, opacity=0.15 if key == metric else 0.07,
                                     line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=name))
            fig.add_trace(go.Scatter(x=epochs, y=mean, mode="lines", name=label,
                                     line={"color": colour, "dash": dash}, legendgroup=name,
                                     hovertemplate=f"{name}<br>{key} epoch %{{x}}: %{{y:{hover}}}<extra></extra>"))
    also = f" (solid) and {train} (dashed)" if train else ""
    fig.update_layout(title=f"{metric}{also} per epoch: mean ± std over each group's trials",
                      xaxis_title="epoch", yaxis_title=metric, yaxis={"tickformat": ".1%" if is_pct(metric) else None})
    return fig


def _decode(samples: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(samples[key]), dtype=np.uint8).reshape(shape)


def _rgb(img: np.ndarray) -> np.ndarray:
    """C×H×W uint8 → H×W×3 (grey repeated), what go.Image draws."""
    hwc = img.transpose(1, 2, 0)
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


def reconstructions(rec: RetrainRecord, cols: int = 8) -> Figure:
    """Test images over their reconstructions (the first seed's model), pairs of rows."""
    samples = rec.get("samples") or {}
    if "reconstructions" not in samples:
        raise NotAvailable("this retrain record keeps no reconstructions")
    n, c, h, w = samples["shape"]
    original = _decode(samples, "pixels", (n, c, h, w))
    recon = _decode(samples, "reconstructions", (n, c, h, w))
    cols = min(cols, n)
    pairs = -(-n // cols)
    fig = make_subplots(rows=2 * pairs, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.02,
                        row_titles=[t for _ in range(pairs) for t in ("original", "reconstructed")])
    for i in range(n):
        row, col = 2 * (i // cols) + 1, i % cols + 1
        fig.add_trace(go.Image(z=_rgb(original[i]), hovertemplate=f"test image {i}<extra></extra>"), row=row, col=col)
        fig.add_trace(go.Image(z=_rgb(recon[i]), hovertemplate=f"reconstruction {i}<extra></extra>"),
                      row=row + 1, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    seed = rec["runs"][0]["seed"]
    fig.update_layout(title=f"First {n} test images and their reconstructions (seed-{seed} model)",
                      height=110 * 2 * pairs + 120, margin={"l": 10, "r": 40})
    return fig


MASK_COLOURS = np.array([[0, 0, 0], [230, 60, 60], [60, 180, 75], [60, 100, 230], [240, 200, 40], [170, 80, 200]],
                        dtype=np.float64)


def _overlay(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Foreground classes tinted over the image (half opacity), background left as it is."""
    rgb = _rgb(img).astype(np.float64)
    colour = MASK_COLOURS[mask % len(MASK_COLOURS)]
    fg = (mask > 0)[..., None]
    return np.where(fg, 0.5 * rgb + 0.5 * colour, rgb).round().astype(np.uint8)


def mask_overlays(rec: RetrainRecord, per_row: int = 4) -> Figure:
    """Each test image three times: as it is, with the true mask, with the predicted mask."""
    samples = rec.get("samples") or {}
    if "masks" not in samples:
        raise NotAvailable("this retrain record keeps no masks")
    n, c, h, w = samples["shape"]
    if n == 0:
        raise NotAvailable("the record keeps no test images (segment(samples=0))")
    images = _decode(samples, "pixels", (n, c, h, w))
    masks = _decode(samples, "masks", (n, h, w))
    pred = _decode(samples, "predicted", (n, h, w))
    rows = -(-n // per_row)
    titles = []
    for i in range(n):
        hit = int(((pred[i] > 0) & (masks[i] > 0)).sum())
        denom = int((pred[i] > 0).sum() + (masks[i] > 0).sum())
        f1 = 1.0 if denom == 0 else 2 * hit / denom
        titles += [f"image {i}", "true", f"predicted (F1 {f1:.2f})"]
    fig = make_subplots(rows=rows, cols=3 * per_row, subplot_titles=titles, horizontal_spacing=0.005,
                        vertical_spacing=0.06)
    for i in range(n):
        row, col = i // per_row + 1, 3 * (i % per_row) + 1
        fig.add_trace(go.Image(z=_rgb(images[i]), hovertemplate=f"test image {i}<extra></extra>"), row=row, col=col)
        fig.add_trace(go.Image(z=_overlay(images[i], masks[i]), hovertemplate=f"true mask {i}<extra></extra>"),
                      row=row, col=col + 1)
        fig.add_trace(go.Image(z=_overlay(images[i], pred[i]), hovertemplate=f"predicted mask {i}<extra></extra>"),
                      row=row, col=col + 2)
    for ann in fig.layout.annotations:
        ann.font = {"size": 9}
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=f"First {n} test images: true and predicted masks (seed-{rec['runs'][0]['seed']} model)",
                      height=120 * rows + 120, margin={"l": 10, "r": 10})
    return fig


def distribution(rec: RetrainRecord) -> Figure:
    """Histogram of a per-image test metric (PSNR, F1) for the first seed's model, mean marked."""
    dist = rec.get("distribution")
    if not dist or not dist.get("values"):
        raise NotAvailable("this retrain record keeps no per-image scores")
    values = np.asarray(dist["values"], dtype=float)
    label = {"psnr": "PSNR (dB)", "f1": "F1 (Dice)"}.get(dist["metric"], dist["metric"])
    fig = go.Figure(go.Histogram(x=values, nbinsx=40, marker_color="#1f77b4",
                                 hovertemplate=f"{label} %{{x}}: %{{y}} images<extra></extra>"))
    fig.add_vline(x=float(values.mean()), line_dash="dash", line_color="#d62728",
                  annotation_text=f"mean {values.mean():.3f}")
    fig.update_layout(title=f"Per-image test {label} over {len(values)} images (seed-{rec['runs'][0]['seed']} model)",
                      xaxis_title=label, yaxis_title="images", bargap=0.05, height=400)
    return fig
