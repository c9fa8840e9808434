"""SIGINT (Ctrl-C) and SIGTERM (``docker stop``, Kubernetes) stop a process the same way.

Both are handled explicitly, in the supervisor and in every worker, instead of relying on
Python's defaults:

- A process started in the background by a non-interactive shell (``hpsearch run … &`` in a
  script, a CI step) inherits SIGINT *ignored*, and Python then installs no KeyboardInterrupt
  handler. The supervisor slept through a Ctrl-C to the process group that its workers obeyed:
  the run ended 0 with its trials failed and no "interrupted" line (the flaky recovery test).
- SIGTERM's default kills at once: no message, running trials left RUNNING until stale.

The first signal raises :class:`Interrupted` (a KeyboardInterrupt, so every Ctrl-C path
handles it); later ones are ignored so they cannot cut short the bookkeeping that follows.
The exit code is 128 + the signal number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the first signal, kept even if its exception was swallowed (a __del__)
_deferring = [False]


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(err: BaseException | int | None) -> int:
    """128 + the signal that stopped the process (130 when unknown: a plain KeyboardInterrupt)."""
    signum = err if isinstance(err, int) else getattr(err, "signum", signal.SIGINT)
    return 128 + int(signum)


def describe(signum: int) -> str:
    """How a trial's error names its interrupt: "Ctrl-C" for SIGINT, else the signal's name."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def received() -> int | None:
    """The signal this process got since :func:`install`, or None."""
    return _received[0] if _received else None


def install() -> None:
    """Handle SIGINT and SIGTERM in this process from now on (a worker, for its whole life)."""
    _received.clear()
    for s in SIGNALS:
        signal.signal(s, _on_signal)
    if not getattr(sys.unraisablehook, "_hpsearch", False):
        sys.unraisablehook = _quiet_about_interrupts(sys.unraisablehook)


def _quiet_about_interrupts(hook: Callable[[Any], object]) -> Callable[[Any], object]:
    """A signal that lands inside a finaliser (SQLAlchemy returning a pooled connection, say)
    raises there, where Python can only print "Exception ignored … Traceback" and go on. The
    interrupt is not lost — the run loop re-checks :func:`received` — so that print is noise in
    the one-line output a Ctrl-C promises; every other unraisable error is still shown."""
    def quiet(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received:
            return
        hook(unraisable)
    quiet._hpsearch = True  # type: ignore[attr-defined]
    return quiet


@contextmanager
def handled() -> Iterator[None]:
    """:func:`install` for the duration of the block, then the previous handlers (the CLI's tests
    run commands in-process). Outside the main thread signals cannot be handled: no-op there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    previous_hook = sys.unraisablehook
    install()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a signal that arrives inside the block until :func:`allow` or the block's end.

    A worker asks for a trial inside this block: a signal between creating the trial and the
    code that marks it failed on interrupt would leave it RUNNING (and, before its first
    heartbeat, RUNNING for good).
    """
    _deferring[0] = True
    try:
        yield
    finally:
        allow()


def allow() -> None:
    """End a deferral: from here a signal raises at once, and one held meanwhile raises now."""
    if _deferring[0]:
        _deferring[0] = False
        if _received:
            raise Interrupted(_received[0])


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    for s in SIGNALS:
        signal.signal(s, _later)
    _received.append(signum)
    if not _deferring[0]:
        raise Interrupted(signum)


def _later(_signum: int, _frame: FrameType | None) -> None:
    """Later signals are ignored by a Python handler, not ``SIG_IGN``: a second signal already
    caught at C level when the first one's handler ran found SIG_IGN and Python raised
    ``OSError: Signal 15 ignored due to race condition`` with a traceback into the training code."""
