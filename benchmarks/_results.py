"""Where every benchmark's numbers go: printed as JSON and, with ``--json FILE``, kept in
``benchmarks/results/`` so docs/benchmarks.md can cite every repeat, not just the medians."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], path: Path | None, *, merge: bool = False) -> None:
    """Print ``result``; write it to ``path``. ``merge`` keeps earlier top-level parts that this run skipped."""
    if merge and path is not None and path.exists():
        earlier = json.loads(path.read_text())
        result = {**earlier, **{name: {**earlier.get(name, {}), **parts} for name, parts in result.items()}}
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.write_text(text + "\n")
