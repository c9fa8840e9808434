"""The environment switches of the training speed-ups: ``HPSEARCH_FUSE`` and ``HPSEARCH_CAPTURE``.

Read in one place and kept free of torch, so the CLI can refuse a bad value in one line
(:func:`check_switches`) before any worker starts or any model trains.
"""

from __future__ import annotations

import os

from hpsearch.errors import HpsearchError

FUSE_ENV = "HPSEARCH_FUSE"  # same-shaped runs trained as one model (hpsearch.train.fused)
CAPTURE_ENV = "HPSEARCH_CAPTURE"  # CUDA graph capture of the training step (hpsearch.train.capture)


def _flag(name: str, allowed_unset: tuple[str, ...], meaning: str) -> bool | None:
    value = os.environ.get(name, "").strip()
    if value in allowed_unset:
        return None
    if value in ("0", "1"):
        return value == "1"
    raise HpsearchError(f"{name}={value!r}: {meaning}")


def fuse_setting() -> bool | None:
    """``HPSEARCH_FUSE``: "1" fuse wherever the runs can fuse, "0" never; unset or empty: None
    (the default rule, :func:`hpsearch.train.fused.fusion_wanted`)."""
    return _flag(FUSE_ENV, ("", "auto"), "use 1 (fuse same-shaped runs), 0 (never) or leave it unset "
                                          "(fuse on CUDA, not on a CPU)")


def capture_setting() -> bool:
    """``HPSEARCH_CAPTURE``: "1" capture CUDA training steps in graphs; unset or "0": eager."""
    return bool(_flag(CAPTURE_ENV, ("",), "use 1 (capture CUDA training steps in graphs) or 0 (eager, the default)"))


def check_switches() -> None:
    """One clear error for a bad value of either switch."""
    fuse_setting()
    capture_setting()
