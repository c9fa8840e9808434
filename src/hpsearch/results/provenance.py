"""The evidence every saved result carries: versions, git revision, command, time."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from typing import Any


def versions() -> dict[str, str]:
    import optuna
    import torch
    import torchvision

    import hpsearch

    return {"hpsearch": hpsearch.__version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "optuna": optuna.__version__, "python": platform.python_version()}


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def evidence() -> dict[str, Any]:
    return {
        "versions": versions(),
        "git": git_revision(),
        "command": " ".join(["hpsearch", *sys.argv[1:]]),
        "host": platform.node(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
