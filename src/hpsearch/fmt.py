"""Number formatting shared by the study note and the HTML report (one convention for both)."""

from __future__ import annotations

import statistics
from typing import Any


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and the values themselves: the
    ``{"mean", "std", "values"}`` shape every stored mean ± std has, and :func:`mean_std` reads."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


PCT_METRICS = ("top1", "topk", "pixel_acc")  # accuracies: shown as percentages


def is_pct(metric: str) -> bool:
    """Accuracies read as percentages; losses, PSNR, SSIM, F1 and IoU as plain numbers."""
    return metric.removeprefix("val_").removeprefix("test_").removeprefix("train_") in PCT_METRICS


def num(v: float | None, pct: bool) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.2f} %" if pct else f"{v:.4f}"


def mean_std(s: dict[str, Any] | None, pct: bool) -> str:
    if not s:
        return "—"
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f} %" if pct else f"{s['mean']:.4f} ± {s['std']:.4f}"


def duration(seconds: float | None) -> str:
    """``45s``, ``3m05s``, ``1h02m``: elapsed times and ETAs in a few characters (``—`` if unknown)."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def pack(parts: list[str], width: int, indent: str = "  ") -> list[str]:
    """Join ``parts`` with two spaces into lines no wider than ``width``; later lines indented."""
    lines: list[str] = []
    line = ""
    for part in parts:
        if line and len(line) + 2 + len(part) > width:
            lines.append(line)
            line = indent + part
        else:
            line = f"{line}  {part}" if line else part
    return [*lines, line] if line else lines
