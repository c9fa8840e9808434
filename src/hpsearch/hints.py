"""Commands printed for the user to run next: shell-quoted, so a study named ``my study`` pastes."""

from __future__ import annotations

import shlex


def command(*args: str) -> str:
    """``hpsearch`` and its arguments as one line a POSIX shell reads back unchanged."""
    return shlex.join(["hpsearch", *args])
