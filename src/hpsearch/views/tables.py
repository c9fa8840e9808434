"""The retrain's tables, built once and drawn three ways: terminal, dashboard note, HTML report.

Before, each of ``render``, ``publish`` and ``report`` wrote its own per-seed table from the raw
record, with its own column order and number format, and they had drifted apart (the terminal
put validation first, the note and the report last). Here a table is data — a header and rows
of :class:`Num` cells that know whether they are a percentage or a mean ± std — and the three
renderers differ only in layout: the terminal is compact (``97.12±0.31`` under a ``top1 %``
header, so six columns fit 80), the note and the report spell the unit in every cell.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from rich import box
from rich.table import Table as RichTable

from hpsearch.fmt import Num, is_pct, summary
from hpsearch.store.records import RetrainRecord, best_epoch, run_metric, task_of

Cell = str | Num


@dataclass(frozen=True)
class Table:
    head: list[str]
    rows: list[list[Cell]]
    total: list[Cell] | None = None  # the "mean ± std" row under the per-run rows

    def _pct_columns(self) -> list[bool]:
        """Columns whose every number is a percentage: the terminal names the unit once, in the header."""
        cells = [*self.rows, *([self.total] if self.total else [])]
        return [any(isinstance(r[i], Num) for r in cells) and all(c.pct for r in cells if isinstance(c := r[i], Num))
                for i in range(len(self.head))]


def _text(cell: Cell, compact: bool) -> str:
    return cell.text(compact) if isinstance(cell, Num) else cell


def to_rich(t: Table) -> RichTable:
    """What the terminal prints: compact cells, the unit once in the header, no vertical rules,
    and the total row as two rows, the means (bold) over the standard deviations, so that a
    task's seven columns fit 80 characters without cutting a number."""
    out = RichTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, (name, pct) in enumerate(zip(t.head, t._pct_columns())):
        out.add_column(f"{name} %" if pct else name, justify="right", no_wrap=i == 0)  # a seed is never cut
    for row in t.rows:
        out.add_row(*(_text(c, True) for c in row))
    if t.total:
        label, *cells = t.total
        means = [Num(c.value, pct=c.pct, digits=c.digits).text(True) if isinstance(c, Num) else c for c in cells]
        stds = ["±" + Num(c.std, pct=c.pct, digits=c.digits).text(True) if isinstance(c, Num) and c.std is not None
                else "" for c in cells]
        out.add_row(_text(label, True).replace("± std", "").strip() or "mean", *means, style="bold")
        out.add_row("± std", *stds)
    return out


def _md(cell: Cell, bold: bool = False) -> str:
    text = _text(cell, False)
    return f"**{text}**" if text and (bold or (isinstance(cell, Num) and cell.strong)) else text


def to_markdown(t: Table) -> list[str]:
    """Lines of a GitHub-flavoured table (the dashboard renders study notes as Markdown)."""
    lines = ["| " + " | ".join(t.head) + " |", "|" + "---|" * len(t.head)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in t.rows]
    if t.total:
        lines.append("| " + " | ".join(_md(c, bold=True) for c in t.total) + " |")
    return lines


def to_html(t: Table) -> str:
    """An HTML table; number cells right-aligned (class ``num``), the total row in bold."""
    def td(cell: Cell, bold: bool) -> str:
        text = html.escape(_text(cell, False))
        if bold or (isinstance(cell, Num) and cell.strong):
            text = f"<b>{text}</b>" if text else text
        return f'<td class="{"num" if isinstance(cell, Num) else ""}">{text}</td>'
    th = "".join(f"<th>{html.escape(h)}</th>" for h in t.head)
    trs = "".join("<tr>" + "".join(td(c, False) for c in row) + "</tr>" for row in t.rows)
    if t.total:
        trs += "<tr>" + "".join(td(c, True) for c in t.total) + "</tr>"
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def retrain_summary(rec: RetrainRecord) -> Table:
    """Search score vs re-scored validation vs test, on the study metric: the three-way comparison."""
    base = str(rec["metric"]).removeprefix("val_")
    pct, n = is_pct(base), len(rec["runs"])
    return Table([base, "value"], [
        [f"search score (trial {rec['trial']}, one seed)", Num(rec.get("search_value"), pct=pct)],
        [f"re-scored validation ({n} fresh seeds, mean ± std)", Num.summary(rec["val"].get(base), pct)],
        [f"test ({n} seeds, mean ± std)", Num.summary(rec["test"].get(base), pct, strong=True)],
    ])


def retrain_seeds(rec: RetrainRecord) -> Table:
    """One row per seed with the task's test metrics, the validation headline and the time; the
    mean ± std row last."""
    task = task_of(rec)
    cols, hl = task.columns(rec), task.headline_column(rec)
    head = ["seed", *(f"test {c.label}" for c in cols), f"val {hl.label}", "seconds"]
    rows: list[list[Cell]] = [
        [str(r["seed"]), *(Num(run_metric(r, f"test_{c.key}"), pct=c.pct) for c in cols),
         Num(run_metric(r, f"val_{hl.key}"), pct=hl.pct), Num(r.get("seconds"), digits=1)]
        for r in rec["runs"]]
    total: list[Cell] = ["mean ± std", *(Num.summary(rec["test"].get(c.key), c.pct) for c in cols),
                         Num.summary(rec["val"].get(hl.key), hl.pct), ""]
    return Table(head, rows, total)


def retrain_validation(rec: RetrainRecord) -> Table | None:
    """Each seed's validation at its best epoch (by the study metric) and at its last, every metric
    the task computes, mean ± std last: the reports' "loss, top-1, top-3 at the best epoch" table.
    None for a refit (no validation) or a record whose runs kept no curves."""
    runs = [r for r in rec["runs"] if r.get("curves")]
    if rec.get("refit") or not runs:
        return None
    task = task_of(rec)
    cols = [c for c in task.columns(rec) if any((r["curves"].get(f"val_{c.key}") or [None])[-1] is not None
                                                 for r in runs)]
    maximize = task.directions().get(rec["metric"], "maximize") == "maximize"
    head = ["seed", "best epoch", *(f"{c.label} {when}" for c in cols for when in ("best", "last"))]
    rows: list[list[Cell]] = []
    columns: list[list[float]] = [[] for _ in range(1 + 2 * len(cols))]
    for r in runs:
        curves = r["curves"]
        best = best_epoch(curves.get(rec["metric"]) or [], maximize)
        values: list[float | None] = [None if best is None else float(best)]
        for c in cols:
            curve = curves.get(f"val_{c.key}") or []
            values += [curve[best - 1] if best is not None and best <= len(curve) else None,
                       curve[-1] if curve else None]
        for column, v in zip(columns, values):
            if v is not None:
                column.append(float(v))
        pcts = [False, *(c.pct for c in cols for _ in range(2))]
        rows.append([str(r["seed"]), *(Num(v, pct=pct, digits=0 if i == 0 else 4)
                                       for i, (v, pct) in enumerate(zip(values, pcts)))])
    pcts = [False, *(c.pct for c in cols for _ in range(2))]
    total: list[Cell] = ["mean ± std", *(Num.summary(summary(v) if v else None, pct) if i else
                                         Num(summary(v)["mean"], summary(v)["std"], digits=1) if v else Num(None)
                                         for i, (v, pct) in enumerate(zip(columns, pcts)))]
    return Table(head, rows, total)


def retrain_candidates(rec: RetrainRecord) -> Table | None:
    """With ``--top-k``: each candidate's search score and its re-scored validation; None otherwise."""
    candidates = rec["candidates"]
    if len(candidates) < 2:
        return None
    base = str(rec["metric"]).removeprefix("val_")
    pct = is_pct(base)
    return Table(["trial", f"search {base}", "re-scored mean ± std", "chosen"], [
        [str(c["trial"]), Num(c.get("search_value"), pct=pct), Num.summary(c, pct),
         "✓" if c["trial"] == rec["trial"] else ""] for c in candidates])
