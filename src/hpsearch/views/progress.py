"""One terminal view of a run across all workers (rich Live on a TTY, plain lines otherwise)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from hpsearch.fmt import duration, metric, pack

if TYPE_CHECKING:  # retrain imports torch; the run view must not
    from hpsearch.results.retrain import Tick


class ReflowSafeLive(Live):
    """A rich ``Live`` that leaves no stale status line when the terminal narrows.

    Before each redraw ``Live`` moves the cursor up by as many lines as it drew last time. A
    terminal that reflows on resize (tmux, VTE, iTerm2) has turned each of those lines into
    several rows by then, so the cursor stopped short and the old status line stayed on screen
    above the new one. Here the last drawing's line lengths are kept, and on a narrower terminal
    the rows they now occupy are what the cursor climbs. (rich keeps that count in the private
    ``LiveRender._shape``; tests/views/test_terminal.py pins the behaviour.)
    """

    _drawn: list[int] | None = None  # lengths of the lines of the last drawing
    _drawn_width = 0

    def refresh(self) -> None:
        with self._lock:
            width = self.console.width
            shape = self._live_render._shape
            if shape is not None and self._drawn and width < self._drawn_width:
                rows = min(sum(max(1, -(-length // width)) for length in self._drawn), self.console.height)
                self._live_render._shape = (shape[0], rows)
            super().refresh()
            if self.console.is_terminal:
                lines = self.console.render_lines(self._live_render.renderable, self.console.options, pad=False)
                self._drawn, self._drawn_width = [Segment.get_line_length(line) for line in lines], width


@dataclass
class Running:
    worker: int
    epoch: int = 0
    value: float | None = None


@dataclass
class RunState:
    """What the view shows; the supervisor updates it from worker events and storage polls."""

    study: str
    metric: str
    total: int
    max_epochs: int
    finished: int = 0  # COMPLETE + PRUNED in the whole study (other machines included)
    pruned: int = 0
    failed: int = 0
    best: float | None = None
    best_number: int | None = None
    running: dict[int, Running] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)
    workers: int = 0  # worker processes this run started
    timeout: float | None = None  # seconds after t0 when no new trial starts
    finished_at_start: int | None = None  # for the rate: trials this run finished, not the study's history
    trial_started: bool = False  # False while the workers import torch and load the data

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def per_minute(self) -> float | None:
        """Trials this run finished per minute (None before the first)."""
        done = self.finished - (self.finished_at_start or 0)
        return done / (self.elapsed / 60) if done > 0 and self.elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds until the budget is met at the current rate, or until the timeout if that comes first."""
        rate = self.per_minute
        left = None if rate is None else max(0, self.total - self.finished) / rate * 60
        if self.timeout is not None:
            until = max(0.0, self.timeout - self.elapsed)
            left = until if left is None else min(left, until)
        return left

    def status(self) -> list[str]:
        """The head of the live view in parts; :func:`hpsearch.fmt.pack` fits them to the terminal."""
        if not self.trial_started and not self.running:
            return [self.study, f"starting {self.workers} worker(s): importing torch, loading the data …",
                    duration(self.elapsed)]
        rate = self.per_minute
        return [self.study, f"finished {self.finished}/{self.total}", f"running {len(self.running)}",
                f"pruned {self.pruned}", f"failed {self.failed}",
                f"best {self.metric} {metric(self.metric, self.best)}" + ("" if self.best_number is None else f" (#{self.best_number})"),
                f"{rate:.1f} trials/min" if rate is not None else "— trials/min",
                f"eta {duration(self.eta)}", duration(self.elapsed)]




class RunView:
    """Live panel when stdout is a terminal; one line per finished trial when it is not."""

    def __init__(self, state: RunState, console: Console | None = None) -> None:
        self.state = state
        self.console = console or Console(markup=False)
        self.live: Live | None = None

    def __enter__(self) -> RunView:
        if self.console.is_terminal:
            self.live = ReflowSafeLive(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def trial_ended(self, number: int, state: str, value: float | None) -> None:
        if self.live is not None:
            self.refresh()
            return
        s = self.state
        rate = s.per_minute
        parts = [f"[{s.finished}/{s.total}] trial {number} {state.lower()} {s.metric}={metric(s.metric, value)}",
                 f"· best {metric(s.metric, s.best)}" + (f" (#{s.best_number})" if s.best_number is not None else ""),
                 *([f"· {rate:.1f}/min · eta {duration(s.eta)}"] if rate is not None else [])]
        for line in pack([" ".join(parts)] if len(" ".join(parts)) <= self.console.width else parts,
                         self.console.width):
            self.console.print(line, highlight=False, overflow="fold")

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, overflow="fold")

    def _render(self) -> Group:
        s = self.state
        head = Text("\n".join(pack(s.status(), self.console.width)), no_wrap=True, overflow="ellipsis")
        table = Table(box=None, pad_edge=False)
        for col in ("trial", "worker", "epoch", s.metric):
            table.add_column(col, justify="right", no_wrap=True)
        for number, r in sorted(s.running.items()):
            table.add_row(str(number), str(r.worker), f"{r.epoch}/{s.max_epochs}", metric(s.metric, r.value))
        return Group(head, table)


def tick_line(t: Tick) -> str:
    """``seed 2/5 epoch 7/20 val_top1 0.9912  trial 3 · eta 1m05s``: one retrain epoch, in one short line."""
    value = metric(t.metric, t.value)
    return (f"seed {t.seed_index}/{t.seeds} epoch {t.epoch}/{t.epochs} {t.metric} {value}  "
            f"{t.label} · eta {duration(t.eta)}")


class RetrainView:
    """``best --retrain``'s progress: a live status line on a terminal (messages scroll above it),
    one plain line per epoch when the output is piped or logged."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None

    def __enter__(self) -> RetrainView:
        if self.console.is_terminal:
            self.live = ReflowSafeLive(Text(""), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=False, overflow="fold")

    def tick(self, t: Tick) -> None:
        line = tick_line(t)
        if self.live is None:
            self.console.print(line, highlight=False, overflow="fold")
            return
        bar = _bar(t.done / max(1, t.total), 20)
        self.live.update(Text(f"{bar} {line}", overflow="ellipsis", no_wrap=True))


def _bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "━" * filled + "╺" + "─" * (width - filled) if filled < width else "━" * width
