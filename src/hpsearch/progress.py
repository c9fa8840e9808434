"""One terminal view of a run across all workers (rich Live on a TTY, plain lines otherwise)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


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

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


class RunView:
    """Live panel when stdout is a terminal; one line per finished trial when it is not."""

    def __init__(self, state: RunState, console: Console | None = None) -> None:
        self.state = state
        self.console = console or Console()
        self.live: Live | None = None

    def __enter__(self) -> RunView:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
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
        self.console.print(
            f"[{s.finished}/{s.total}] trial {number} {state.lower()} "
            f"{s.metric}={_fmt(value)} · best {_fmt(s.best)}"
            + (f" (#{s.best_number})" if s.best_number is not None else ""),
            highlight=False,
            soft_wrap=True,
        )

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def _render(self) -> Group:
        s = self.state
        head = Text.assemble(
            (f"{s.study}", "bold"),
            f"  finished {s.finished}/{s.total}  running {len(s.running)}  pruned {s.pruned}  "
            f"failed {s.failed}  best {s.metric} ",
            (_fmt(s.best), "bold green"),
            f"{'' if s.best_number is None else f' (#{s.best_number})'}  {s.elapsed:.0f}s",
        )
        table = Table(box=None, pad_edge=False)
        for col in ("trial", "worker", "epoch", s.metric):
            table.add_column(col, justify="right")
        for number, r in sorted(s.running.items()):
            table.add_row(str(number), str(r.worker), f"{r.epoch}/{s.max_epochs}", _fmt(r.value))
        return Group(head, table)
