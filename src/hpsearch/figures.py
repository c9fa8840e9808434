"""Plotly figures of a study and of its retrain record (no HTML, no I/O: see ``report``).

Where ``optuna.visualization`` already draws a plot we use it. We draw our own only where a
search service needs something it lacks: learning curves coloured by pruned vs completed, a
timeline per *worker* (not per trial), and everything made from the retrain record — which
was computed during the one test evaluation, so nothing here ever touches the test split.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from hpsearch.models import LEGACY_MODEL

STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#b0b0b0", "FAIL": "#d62728", "RUNNING": "#2ca02c",
                "WAITING": "#9467bd"}
Figure = go.Figure


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
    """Optuna's plots take one objective: with several, plot the study metric (the first)."""
    if len(study.directions) == 1:
        return {}
    names = study.metric_names or ["objective 0"]
    return {"target": lambda t: t.values[0], "target_name": names[0]}


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


def parallel_coordinates(study: optuna.Study) -> Figure:
    done = _completed(study, 2)
    if not any(len({str(t.params.get(p)) for t in done}) > 1 for p in done[0].params):
        raise NotAvailable("every completed trial has the same parameters")
    return _quiet(lambda: optuna.visualization.plot_parallel_coordinate(study, **_target(study)))


def importances(study: optuna.Study) -> Figure:
    done = _completed(study, 3)
    varied = [p for p in done[0].params if len({str(t.params.get(p)) for t in done}) > 1]
    if not varied:
        raise NotAvailable("no parameter varies across the completed trials")
    if len({t.values[0] for t in done}) < 2:
        raise NotAvailable("every completed trial has the same score, so no parameter explains any of it")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)  # fixed seed: the same report twice
    try:
        return _quiet(lambda: optuna.visualization.plot_param_importances(study, evaluator=evaluator,
                                                                          **_target(study)))
    except RuntimeError as e:  # fANOVA: "zero total variance in all trees" and the like
        raise NotAvailable(f"fANOVA could not fit the completed trials ({e})") from None


def slices(study: optuna.Study) -> Figure:
    _completed(study)
    return _quiet(lambda: optuna.visualization.plot_slice(study, **_target(study)))


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
            marker={"size": 4}, hovertemplate=f"trial {t.number} ({state.lower()})<br>epoch %{{x}}: %{{y:.4f}}"
                                              "<extra></extra>"))
        seen.add(state)
    fig.update_layout(title=f"Learning curves: {metric} per epoch", xaxis_title="epoch", yaxis_title=metric)
    return fig


def _epochs(t: FrozenTrial, metric: str) -> dict[int, float]:
    """A trial's metric by epoch: what it reported to the pruner, or (a multi-objective trial
    reports nothing) its recorded curve."""
    if t.intermediate_values:
        return dict(t.intermediate_values)
    curve = (t.user_attrs.get("curves") or {}).get(metric) or []
    return {i: v for i, v in enumerate(curve, 1) if v is not None}


def size_vs_score(study: optuna.Study, metric: str) -> Figure:
    """Score against parameters and FLOPs, the trade-off a ``max_params`` limit cuts."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and t.user_attrs.get("n_params")]
    if not done:
        raise NotAvailable("no completed trial has a recorded size yet")
    has_flops = any(t.user_attrs.get("flops") for t in done)
    fig = make_subplots(rows=1, cols=2 if has_flops else 1, shared_yaxes=True,
                        subplot_titles=["parameters", "FLOPs per image"] if has_flops else ["parameters"])
    palette = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    models = sorted({str(t.user_attrs.get("model", LEGACY_MODEL)) for t in done})
    for i, model in enumerate(models):
        mine = [t for t in done if str(t.user_attrs.get("model", LEGACY_MODEL)) == model]
        for col, key in enumerate(["n_params", "flops"][: 2 if has_flops else 1], start=1):
            pts = [t for t in mine if t.user_attrs.get(key)]
            fig.add_trace(go.Scatter(
                x=[t.user_attrs[key] for t in pts], y=[t.values[0] for t in pts], mode="markers", name=model,
                legendgroup=model, showlegend=col == 1, marker={"color": palette[i % len(palette)], "size": 7},
                text=[f"trial {t.number}" for t in pts],
                hovertemplate=f"%{{text}} ({model})<br>{key}: %{{x:,}}<br>{metric}: %{{y:.4f}}<extra></extra>"),
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
        end = t.datetime_complete or t.datetime_start
        state = t.state.name
        worker = str(t.user_attrs.get("worker", "unknown"))
        fig.add_trace(go.Bar(
            base=[t.datetime_start.isoformat()], x=[max((end - t.datetime_start).total_seconds() * 1000, 1.0)],
            y=[worker], orientation="h", name=state.lower(), legendgroup=state, showlegend=state not in seen,
            marker_color=STATE_COLORS.get(state, "#333"),
            hovertemplate=f"trial {t.number} ({state.lower()}), {(end - t.datetime_start).total_seconds():.1f}s"
                          "<extra></extra>"))
        seen.add(state)
    fig.update_layout(title="Worker timeline: which worker ran which trial, when", barmode="overlay",
                      xaxis={"type": "date", "title": "time"}, yaxis={"title": "worker (host:pid)"},
                      height=max(300, 60 * len({str(t.user_attrs.get('worker')) for t in trials}) + 150))
    return fig


def retrain_curves(rec: dict[str, Any]) -> Figure:
    """Per-seed learning curves of the retrained models: loss (train, val) and the task's headline
    validation metric (top-1 for classify, PSNR for reconstruct, F1 for segment)."""
    from hpsearch.tasks import from_dict

    head = from_dict(rec.get("task")).headline_column(rec)
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
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text=head.label, tickformat=".1%" if head.pct else None, row=1, col=2)
    fig.update_layout(title=f"Retrained trial {rec['trial']}: {len(rec['runs'])} seeds")
    return fig


def confusion(rec: dict[str, Any]) -> Figure:
    """Test confusion matrix summed over the retrained seeds (rows: true class)."""
    m = np.asarray(rec["confusion"], dtype=float)
    classes = [str(c) for c in rec["classes"]]
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(
        z=share, x=classes, y=classes, colorscale="Blues", zmin=0, zmax=1, customdata=m,
        text=[[f"{int(v)}" for v in row] for row in m], texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{customdata:.0f} (%{z:.1%} of the row)<extra></extra>",
        colorbar={"title": "share of row", "tickformat": ".0%"}))
    fig.update_layout(title=f"Test confusion matrix (counts over {len(rec['runs'])} seeds)",
                      xaxis={"title": "predicted", "side": "bottom", "type": "category"},
                      yaxis={"title": "true", "autorange": "reversed", "type": "category"},
                      height=max(420, 40 * len(classes) + 200))
    return fig


def sample_images(rec: dict[str, Any], rows: int = 3, cols: int = 10) -> Figure:
    """The first test images with the first seed's prediction; mistakes titled in red."""
    samples = rec.get("samples")
    if not samples:
        raise NotAvailable("this retrain record has no sample images (retrained by an older hpsearch: "
                           "`hpsearch best STUDY --retrain --force` records them, a new look at the test split)")
    n, c, h, w = samples["shape"]
    pixels = np.frombuffer(base64.b64decode(samples["pixels"]), dtype=np.uint8).reshape(n, c, h, w)
    run = rec["runs"][0]
    preds, labels, classes = run["sample_predictions"], samples["labels"], [str(x) for x in rec["classes"]]
    n = min(n, rows * cols, len(preds))
    titles = []
    for i in range(n):
        ok = preds[i] == labels[i]
        titles.append(classes[preds[i]] if ok else f"{classes[preds[i]]} (true {classes[labels[i]]})")
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.08)
    for i in range(n):
        img = pixels[i].transpose(1, 2, 0)
        rgb = np.repeat(img, 3, axis=2) if c == 1 else img
        fig.add_trace(go.Image(z=rgb, hovertemplate=f"test image {i}<extra></extra>"), row=i // cols + 1,
                      col=i % cols + 1)
    for i, ann in enumerate(fig.layout.annotations):
        wrong = preds[i] != labels[i]
        ann.font = {"size": 10, "color": "#d62728" if wrong else "#222"}
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    wrong = sum(preds[i] != labels[i] for i in range(n))
    fig.update_layout(title=f"First {n} test images, predicted by the seed-{run['seed']} model "
                            f"({wrong} mistake{'s' if wrong != 1 else ''}, in red with the true label)",
                      height=130 * rows + 120, margin={"l": 10, "r": 10})
    return fig


def first_layer_filters(rec: dict[str, Any], max_filters: int = 64) -> Figure:
    """The first convolution's kernels of the first seed's model, each scaled to its own range."""
    layer = rec.get("first_layer")
    if not layer:
        raise NotAvailable("this retrain record has no first-layer weights (retrained by an older hpsearch)")
    f, c, kh, kw = layer["shape"]
    w = np.asarray(layer["weights"], dtype=float).reshape(f, c, kh, kw)[:max_filters]
    n = len(w)
    cols = min(n, 16)
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.005, vertical_spacing=0.01)
    for i, k in enumerate(w):
        if c == 3:
            lo, hi = k.min(), k.max()
            rgb = ((k - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8).transpose(1, 2, 0)
            trace: go.BaseTraceType = go.Image(z=rgb, hovertemplate=f"filter {i}<extra></extra>")
        else:
            z = k.mean(axis=0)
            lim = max(float(np.abs(z).max()), 1e-12)
            trace = go.Heatmap(z=z, zmin=-lim, zmax=lim, colorscale="RdBu", showscale=False,
                               hovertemplate=f"filter {i}: %{{z:.3f}}<extra></extra>")
        fig.add_trace(trace, row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=None)
    note = "red positive, blue negative" if c != 3 else "RGB, each filter min–max scaled"
    fig.update_layout(title=f"First-layer filters ({f} × {c}×{kh}×{kw}, seed {layer['seed']}; {note})",
                      height=70 * rows + 110, margin={"l": 10, "r": 10})
    return fig


def group_curves(groups: list[Any], metric: str) -> Figure:
    """Each compared group's mean validation curve with a ± std band over its trials (seeds)."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    fig = go.Figure()
    for i, g in enumerate(groups):
        curves = [c for c in g.curves(metric) if c and all(v is not None for v in c)]
        if not curves:
            continue
        n = min(len(c) for c in curves)  # the epochs every trial of the group reached
        a = np.asarray([c[:n] for c in curves], dtype=float)
        mean, std = a.mean(axis=0), a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(n)
        epochs = list(range(1, n + 1))
        name = ", ".join(f"{k}={v}" for k, v in g.params.items())
        colour = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=epochs + epochs[::-1], y=list(mean + std) + list((mean - std)[::-1]),
                                 fill="toself", fillcolor=colour, opacity=0.15, line={"width": 0},
                                 hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=epochs, y=mean, mode="lines", name=f"{name} (n={len(a)})",
                                 line={"color": colour}, legendgroup=name,
                                 hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>"))
    fig.update_layout(title=f"{metric} per epoch: mean ± std over each group's trials",
                      xaxis_title="epoch", yaxis_title=metric)
    return fig


def _decode(samples: dict[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(samples[key]), dtype=np.uint8).reshape(shape)


def _rgb(img: np.ndarray) -> np.ndarray:
    """C×H×W uint8 → H×W×3 (grey repeated), what go.Image draws."""
    hwc = img.transpose(1, 2, 0)
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


def reconstructions(rec: dict[str, Any], cols: int = 8) -> Figure:
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


def mask_overlays(rec: dict[str, Any], per_row: int = 4) -> Figure:
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


def distribution(rec: dict[str, Any]) -> Figure:
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
