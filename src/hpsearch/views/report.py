"""`hpsearch report`: one self-contained HTML file (plotly.js embedded) that opens offline.

The file is meant to be mailed, attached to a report or opened years later, so it carries
everything: the search plots, and the retrain result (search score vs re-scored validation vs
test), which is read from the study's retrain record. The report never loads a dataset.

plotly.js is most of the file (4.8 of its 5 MB) and is written once, in the head; every plot
is a div drawn by it. ``plotlyjs="cdn"`` links the same version from cdn.plot.ly instead: a
file of a few hundred kilobytes for readers who are online.
"""

from __future__ import annotations

import functools
import html
import re
import statistics
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import plotly.io
import plotly.offline
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError
from hpsearch.fmt import is_pct, mean_std, summary
from hpsearch.fmt import metric as fmt_metric
from hpsearch.results.compare import compare
from hpsearch.store.paths import check_output, write_atomically
from hpsearch.store.queries import objective_names, pareto_front, recorded, settings_of
from hpsearch.store.records import RetrainRecord, TrialRecord, curves_of_trial, looks_counted, task_of
from hpsearch.study.samplers import SEED_PARAM
from hpsearch.views import figures, tables
from hpsearch.views.importance import METHOD, RELIABLE_TRIALS, TOP_QUANTILE, param_importances

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .6rem 0; } td, th { border: 1px solid #ddd; padding: .25rem .6rem; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #666; } .missing { background: #fff8e1; border: 1px solid #f0d48a; padding: .6rem 1rem; }
.plot { margin: .5rem 0 1.2rem; }
code { background: #f4f4f4; padding: 0 .2rem; border-radius: 3px; }
.caveat { background: #fff3f0; border-left: 4px solid #d62728; padding: .4rem .8rem; }
nav.toc { columns: 2; background: #fafafa; border: 1px solid #eee; padding: .4rem 1.2rem; margin: 1rem 0; }
nav.toc a { display: block; line-height: 1.6; } table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #bbb; } .scroll { overflow-x: auto; max-height: 36rem; }
"""
# click a header of the trial table to sort by it (numbers as numbers; again to reverse): no library
SORT_JS = """<script>
document.querySelectorAll("table.sortable").forEach(function (t) {
  t.querySelectorAll("th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.from(body.rows), up = th.dataset.dir !== "asc";
      var key = function (r) { var c = r.cells[i], v = c.dataset.v; return v === undefined ? c.textContent : v; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var d = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return up ? d : -d;
      });
      th.dataset.dir = up ? "asc" : "desc";
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
</script>"""


def _text(text: str) -> str:
    """Escaped prose whose `command` spans become <code>: the captions are written once, in the
    Markdown-ish form the terminal and the dashboard note show as is."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


class _Page:
    """Collects sections; each plot becomes a div rendered by the one embedded plotly.js."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.plots = 0
        self.toc: list[tuple[str, str]] = []  # (anchor, title) of every section, for the contents

    def h2(self, title: str, why: str = "") -> None:
        anchor = f"s{len(self.toc) + 1}"
        self.toc.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')
        if why:
            self.parts.append(f'<p class="muted">{_text(why)}</p>')

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def missing(self, text: str) -> None:
        self.parts.append(f'<p class="missing">{_text(text)}</p>')

    def plot(self, draw: Callable[[], figures.Figure]) -> None:
        try:
            fig = draw()
        except figures.NotAvailable as e:
            self.missing(f"Not shown: {e}.")
            return
        self.plots += 1
        fig.update_layout(template="plotly_white")
        div = plotly.io.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"plot-{self.plots}",
                                config={"displaylogo": False, "responsive": True})
        self.parts.append(f'<div class="plot">{div}</div>')


PLOTLYJS_MODES = ("inline", "cdn")


def plotlyjs_tag(mode: str) -> str:
    """The one script tag that loads plotly.js: embedded (works offline) or from its CDN, pinned
    to the version plotly.py was built with (the figures' JSON is written for that version)."""
    if mode == "inline":
        return f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
    if mode == "cdn":
        url = f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"
        return f'<script src="{url}" charset="utf-8"></script>'
    raise ValueError(f"plotlyjs must be one of {', '.join(PLOTLYJS_MODES)}, not {mode!r}")


def write_report(study: optuna.Study, path: Path, by: list[str] | None = None, plotlyjs: str = "inline") -> int:
    """Write the report; return how many plots it holds. A bad target (a device, a directory)
    is refused before the plots are built, and again just before the write. ``by``: the
    parameters of a comparison section (default: a grid's dimensions but the seed); ``plotlyjs``:
    ``inline`` (default, offline) or ``cdn``."""
    check_output(path)
    script = plotlyjs_tag(plotlyjs)
    page = _Page()
    settings = settings_of(study)
    metric = settings.metric
    rec = recorded(study)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}

    page.raw(f"<h1>{html.escape(study.study_name)}</h1>")
    page.raw(f'<p class="muted">hpsearch report, written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}. '
             f"Dataset {html.escape(settings.data.label)}, metric {html.escape(metric)} "
             f"({'higher' if study.directions[0].name == 'MAXIMIZE' else 'lower'} is better), "
             f"up to {settings.max_epochs} epochs per trial.</p>")
    page.raw(_table(["trials", *counts], [[str(len(trials)), *[str(n) for n in counts.values()]]]))
    if counts["complete"] and settings.multi:
        _front_section(page, study)
    elif counts["complete"]:
        best = study.best_trial
        page.raw(f"<p>Best trial <b>{best.number}</b>: {html.escape(metric)} = <b>{fmt_metric(metric, best.value)}</b> "
                 f"on the validation split, one seed.</p>")
        page.raw(_table(["parameter", "value"], [[k, _v(v)] for k, v in best.params.items()]))

    page.h2("Retrained result", "The chosen trial retrained over fresh seeds and evaluated once on the held-out "
            "test split by `hpsearch best --retrain`; this report only reads that record.")
    if rec is None:
        shows = {"reconstruct": "test reconstructions, per-image PSNR",
                 "segment": "test masks, per-image F1"}.get(settings.task.kind, "test confusion matrix, test images")
        page.missing(f"Not retrained yet: run `hpsearch best {study.study_name} --retrain`. The retrain table, "
                     f"retrain learning curves, {shows} and first-layer filters appear here after it.")
    else:
        _retrain_section(page, rec, looks_counted(study))

    by = by if by is not None else [d for d in settings.sampler.dimensions or {} if d != SEED_PARAM]
    if by and counts["complete"]:
        _comparison_section(page, study, by, metric)

    page.h2("Optimization history", "Each completed trial's score and the best so far.")
    page.plot(lambda: figures.optimization_history(study))
    page.h2("Learning curves", "Validation score after every epoch; the median pruner stops trials (grey) "
            "whose curve falls below the median of earlier trials at the same epoch. The axis is zoomed to "
            "where the better three quarters of the completed trials end up (a button shows the full range).")
    page.plot(lambda: figures.learning_curves(study, metric))
    page.h2("Score against model size", "Each completed trial's score against its parameters and forward "
            "FLOPs per image (log scales), one colour per model spec: what each extra parameter bought.")
    page.plot(lambda: figures.size_vs_score(study, metric))
    if counts["complete"] and not settings.multi:
        _layers_section(page, study)
    page.h2("Parallel coordinates", "One line per completed trial across the parameters that vary, coloured "
            "by score (yellow is better); log-scale parameters on log axes. Drag along an axis to filter.")
    page.plot(lambda: figures.parallel_coordinates(study))
    _importance_section(page, study)
    page.h2("Slices", "Score against each parameter separately, one panel per parameter on a shared score "
            "axis; colour is the score as well (yellow is better).")
    page.plot(lambda: figures.slices(study))
    page.h2("Worker timeline", "Which worker process ran which trial, and when.")
    page.plot(lambda: figures.worker_timeline(study))
    _trial_table(page, study, metric)

    contents = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in page.toc)
    head = 3 if len(page.parts) > 3 else len(page.parts)  # the title, the line under it and the counts
    body = "\n".join([*page.parts[:head], f'<nav class="toc"><b>Contents</b>{contents}</nav>', *page.parts[head:]])
    title = html.escape(f"{study.study_name} — hpsearch report")
    doc = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
           f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style>'
           f"{script}</head>"
           f"<body>\n{body}\n{SORT_JS}\n</body></html>\n")
    write_atomically(path, doc)  # never a half-written report under the final name
    return page.plots


def _layers_section(page: _Page, study: optuna.Study) -> None:
    """The best trial's model layer by layer, as `hpsearch inspect` prints it."""
    from hpsearch.results.inspect import layer_table

    try:
        t = layer_table(study)
    except HpsearchError as e:  # a user spec whose module changed or moved: say why, draw the rest
        page.h2("Layers of the best trial")
        page.missing(f"Not shown: {e}.")
        return
    frozen = t.params != t.trainable
    page.h2(f"Layers of the best trial ({t.trial})", f"Each layer's output for one {'×'.join(map(str, t.input))} "
            f"image, its parameters and its forward FLOPs (a multiply-add is 2): {t.params:,} parameters"
            f"{f' ({t.params - t.trainable:,} frozen)' if frozen else ''}, {t.flops:,} FLOPs per image. "
            "`hpsearch inspect --trial N` shows any other trial.")
    rows = [[r.name, r.kind, "×".join(map(str, r.output[1:])) if r.output else "—", f"{r.params:,}",
             *([f"{r.params - r.trainable:,}"] if frozen else []), f"{r.flops:,}"] for r in t.rows]
    page.raw(_table(["layer", "type", "output", "params", *(["frozen"] if frozen else []), "FLOPs"], rows))


def _trial_table(page: _Page, study: optuna.Study, metric: str) -> None:
    """Every trial, one row each, sortable by any column in the browser (the terminal's `trials`)."""
    trials = study.get_trials(deepcopy=False)
    page.h2("Trials", f"Every trial of the study; click a column to sort by it. {metric} is the validation score "
            "the trial reported last (pruned: where it stopped).")
    if not trials:
        page.missing("No trials yet.")
        return
    params = list(dict.fromkeys(p for t in trials for p in t.params))
    head = ["#", "state", metric, "epochs", "best epoch", "seconds", "params", *params]

    def cell(text: str, sort: Any = None) -> str:
        key = "" if sort is None else f' data-v="{html.escape(str(sort))}"'
        return f'<td class="num"{key}>{html.escape(text)}</td>'
    rows = []
    for t in trials:
        r = TrialRecord.of_trial(t)
        value = t.values[0] if t.values else (t.intermediate_values[max(t.intermediate_values)]
                                              if t.intermediate_values else None)
        cells = [cell(str(t.number), t.number), f"<td>{t.state.name.lower()}</td>",
                 cell(fmt_metric(metric, value) if value is not None else "—", value),
                 cell(_v(r.epochs), r.epochs), cell(_v(r.best_epoch), r.best_epoch),
                 cell(_v(r.seconds), r.seconds), cell(_v(r.n_params), r.n_params),
                 *(cell(_v(t.params.get(p, "")), t.params.get(p)) for p in params)]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    page.raw(f'<div class="scroll"><table class="sortable"><thead><tr>{th}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table></div>')


def _front_section(page: _Page, study: optuna.Study) -> None:
    """Several objectives: the trials no other trial beats on all of them, as a table and a plot."""
    names = objective_names(study)
    front = pareto_front(study)
    page.raw(f"<p>{len(front)} trial{'s' if len(front) != 1 else ''} on the Pareto front over "
             f"{html.escape(', '.join(names))} (validation split, one seed each): no single best; "
             f"retrain one with <code>hpsearch best {html.escape(study.study_name)} --retrain --trial N</code>.</p>")
    params = list(dict.fromkeys(k for t in front for k in t.params))
    page.raw(_table(["trial", *names, *params],
                    [[str(t.number), *(_v(v) for v in t.values or []), *(_v(t.params.get(p, "")) for p in params)]
                     for t in front]))
    page.h2("Pareto front", "Every completed trial on the objectives; the front in colour.")
    page.plot(lambda: figures.pareto_front(study))


def _retrain_section(page: _Page, rec: RetrainRecord, looks: int) -> None:
    n = len(rec["runs"])
    on = " on train + validation (a refit: no validation score)" if rec["refit"] else ""
    page.raw(f"<p>Trial {rec['trial']} retrained with {n} seeds × {rec['epochs']} epochs{on} on "
             f"{html.escape(str(rec['device']))}; test split looked at {looks} time(s) in this "
             "study.</p>")
    page.raw(tables.to_html(tables.retrain_summary(rec)))
    page.raw(tables.to_html(tables.retrain_seeds(rec)))
    validation = tables.retrain_validation(rec)
    if validation is not None:
        page.raw(f"<p>Validation of each seed at its best epoch (by {html.escape(rec['metric'])}) and at its "
                 "last:</p>")
        page.raw(tables.to_html(validation))
    candidates = tables.retrain_candidates(rec)
    if candidates is not None:
        page.raw("<p>Candidates re-scored on validation before choosing (top-k):</p>")
        page.raw(tables.to_html(candidates))
    task = task_of(rec)
    hl = task.headline_column(rec)

    page.h2("Retrain learning curves", f"Every seed's loss and validation {hl.label} per epoch.")
    page.plot(lambda: figures.retrain_curves(rec))
    for name in task.test_sections:  # the task says what its test record holds to draw
        TEST_SECTIONS[name](page, rec)
    page.h2("First-layer filters", "What the first convolution learned to look for, each filter apart.")
    page.plot(lambda: figures.first_layer_filters(rec))


def _importance_section(page: _Page, study: optuna.Study) -> None:
    """Importances with their evidence: the method (the dashboard's), how many completed trials
    they rest on, and a caveat below the number at which the method is stable."""
    imp = param_importances(study)
    page.h2("Parameter importances", f"{METHOD}. The same numbers as the importance panel of `hpsearch dashboard`.")
    top = imp.top_trials if imp.completed > 1 else 0
    line = (f"Computed from {imp.completed} completed trial{'s' if imp.completed != 1 else ''}; the best "
            f"{TOP_QUANTILE:.0%} is {top} trial{'s' if top != 1 else ''}.")
    if imp.reliable:
        page.raw(f"<p>{html.escape(line)}</p>")
    else:
        page.raw(f'<p class="caveat">{html.escape(line)} <b>Not reliable below {RELIABLE_TRIALS} completed '
                 "trials</b> (Optuna advises at least 5 trials in the best 10 % for PED-ANOVA): read this "
                 "ranking as a hint, not a finding.</p>")
    page.plot(lambda: figures.importances(study, imp))


def _mistakes_section(page: _Page, rec: RetrainRecord) -> None:
    """The misclassified test images, which say more than correct ones; records from before
    hpsearch kept them show their first 30 test images instead, and say so."""
    seed = rec["runs"][0]["seed"]
    kept = rec.get("mistakes")
    if kept is None:
        page.h2("Test images", "The first 30 test images with predicted labels, mistakes in red (this retrain "
                "record predates keeping the misclassified images; `hpsearch best --retrain --force` keeps "
                "them, a new look at the test split).")
        page.plot(lambda: figures.sample_images(rec))
        return
    page.h2("Misclassified test images", f"Test images the seed-{seed} model got wrong ({kept['total']} in all), "
            f"those the most seeds' models also missed first: predicted label, true label in brackets, then "
            f"how many of the {kept['models']} models missed it.")
    if not kept["indices"]:
        page.raw(f"<p>The seed-{seed} model classified every test image correctly.</p>")
        return
    page.plot(lambda: figures.mistakes(rec))


def _confusion_section(page: _Page, rec: RetrainRecord) -> None:
    n = len(rec["runs"])
    per_seed = " The menu shows each seed's own matrix." if rec.get("confusion_per_seed") and n > 1 else ""
    page.h2("Test confusion matrix", f"Computed during the single test evaluation: the mean over the {n} "
            f"seeds' models, so each row sums to that class's test images.{per_seed}")
    page.plot(lambda: figures.confusion(rec))


def _reconstructions_section(page: _Page, rec: RetrainRecord) -> None:
    """An autoencoder is judged by eye as much as by PSNR: originals over reconstructions."""
    page.h2("Test reconstructions", "The first test images (top row of each pair) and the first seed's "
            "reconstructions of them (below), kept during the single test evaluation.")
    page.plot(lambda: figures.reconstructions(rec))


def _masks_section(page: _Page, rec: RetrainRecord) -> None:
    """Masks over images: where the model is wrong, which a mean F1 cannot show."""
    page.h2("Test masks", "The first test images with the true mask (middle) and the first seed's predicted "
            "mask (right) overlaid; kept during the single test evaluation.")
    page.plot(lambda: figures.mask_overlays(rec))


def _distribution_section(page: _Page, rec: RetrainRecord) -> None:
    """The spread of a per-image score: a good mean can hide images the model cannot do at all."""
    metric = rec["distribution"]["metric"] if "distribution" in rec else "score"
    label = {"psnr": "PSNR", "f1": "F1 (Dice)"}.get(metric, metric)
    page.h2(f"Per-image test {label}", "Distribution over the test images for the first seed's model.")
    page.plot(lambda: figures.distribution(rec))


def _comparison_section(page: _Page, study: optuna.Study, by: list[str], metric: str) -> None:
    """What `hpsearch compare --by` prints, and each group's mean curve with its spread."""
    result = compare(study, by, metric)
    pct = is_pct(metric)
    page.h2(f"Comparison by {', '.join(by)}", "Validation only, mean ± std over each group's trials (the other "
            "grid dimensions, seeds above all), best first: choose here, then look at the test split once.")
    rows = [[*(_v(g.params[p]) for p in by), str(len(g.values)), mean_std(summary(g.values), pct),
             _v(g.mean_of("epochs")), _v(g.mean_of("seconds"))] for g in result.groups]
    page.raw(_table([*by, "n", f"{metric} mean ± std", "epochs", "seconds"], rows))
    # every metric the task computes, validation (solid) beside the training pass (dashed), groups overlaid
    have = {k for g in result.groups for t in g.trials for k in curves_of_trial(t)}
    first = metric.removeprefix("val_")
    bases = [first, *sorted(k.removeprefix("val_") for k in have if k.startswith("val_") and k != metric)]
    for base in bases:
        if f"val_{base}" in have:
            train = f"train_{base}" if f"train_{base}" in have else None
            page.plot(functools.partial(figures.group_curves, result.groups, f"val_{base}", train))


def _per_class_section(page: _Page, rec: RetrainRecord) -> None:
    """Accuracy of each true class, mean ± std over the seeds: an overall top-1 can hide a class
    the model never gets right, the more so when the classes are imbalanced."""
    runs = [r["test_per_class_top1"] for r in rec["runs"] if r.get("test_per_class_top1")]
    if not runs:
        return  # recorded by an older hpsearch; the confusion matrix above has the same counts
    counts = [sum(row) // max(1, len(rec["runs"])) for row in rec["confusion"]]
    page.h2("Per-class test accuracy", "Share of each class's test images predicted right, over the seeds, "
            "worst first.")
    rows = []
    for i in sorted(range(len(counts)), key=lambda i: statistics.fmean(r[i] for r in runs)):
        values = [r[i] for r in runs]
        rows.append([str(rec["classes"][i]), str(counts[i]), mean_std(summary(values), True)])
    page.raw(_table(["class", "test images", "accuracy (mean ± std)"], rows))


# what a task's test record can show, by the names tasks list in Task.test_sections
TEST_SECTIONS: dict[str, Callable[[_Page, RetrainRecord], None]] = {
    "confusion": _confusion_section, "per_class": _per_class_section, "mistakes": _mistakes_section,
    "reconstructions": _reconstructions_section, "masks": _masks_section, "distribution": _distribution_section,
}


def _v(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _table(head: list[str], rows: list[list[str]], *, escape: bool = True) -> str:
    esc = html.escape if escape else (lambda s: s)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f'<td class="{"num" if i else ""}">{esc(c)}</td>' for i, c in enumerate(r))
                  + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"
