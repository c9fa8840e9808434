"""``HPSEARCH_FUSE``: whether same-shaped runs train fused (see :mod:`hpsearch.fused`).

Read in one place and kept free of torch, so the CLI can refuse a bad value in one line before
any worker starts or any model trains.
"""

from __future__ import annotations

import os

from hpsearch.errors import HpsearchError

FUSE_ENV = "HPSEARCH_FUSE"


def fuse_setting() -> bool | None:
    """``HPSEARCH_FUSE``: "1" fuse wherever the runs can fuse, "0" never; unset or empty: None
    (the default rule, :func:`hpsearch.fused.fusion_wanted`)."""
    value = os.environ.get(FUSE_ENV, "").strip()
    if value in ("", "auto"):
        return None
    if value in ("0", "1"):
        return value == "1"
    raise HpsearchError(f"{FUSE_ENV}={value!r}: use 1 (fuse same-shaped runs), 0 (never) or leave it unset "
                        "(fuse on CUDA, not on a CPU)")
