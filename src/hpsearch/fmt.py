"""Number formatting: one convention for the terminal, the study note and the HTML report."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict


class Summary(TypedDict):
    """Every stored mean ± std: sample std, 0 for one value, and the values themselves."""

    mean: float
    std: float
    values: list[float]


def summary(values: list[float]) -> Summary:
    """Mean, sample standard deviation (0 for one value) and the values themselves: the
    ``{"mean", "std", "values"}`` shape every stored mean ± std has, and :func:`mean_std` reads."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


PCT_METRICS = ("top1", "topk", "pixel_acc")  # accuracies: shown as percentages


def is_pct(metric: str) -> bool:
    """Accuracies read as percentages; losses, PSNR, SSIM, F1 and IoU as plain numbers."""
    return metric.removeprefix("val_").removeprefix("test_").removeprefix("train_") in PCT_METRICS


@dataclass(frozen=True)
class Num:
    """A number cell: one value, or a mean with its standard deviation (``std`` set)."""

    value: float | None
    std: float | None = None
    pct: bool = False
    digits: int = 4
    strong: bool = False  # the result the table exists for (the test score)

    @classmethod
    def summary(cls, s: Mapping[str, Any] | None, pct: bool, strong: bool = False) -> Num:
        """From a stored ``{"mean", "std", "values"}`` (``fmt.summary``); empty if absent."""
        return cls(s["mean"], s["std"], pct, strong=strong) if s else cls(None, pct=pct)

    def text(self, compact: bool = False) -> str:
        if self.value is None:
            return "—"
        scale, digits = (100.0, 2) if self.pct else (1.0, self.digits)
        unit = "" if compact or not self.pct else " %"
        if self.std is None:
            return f"{scale * self.value:.{digits}f}{unit}"
        sep = "±" if compact else " ± "
        return f"{scale * self.value:.{digits}f}{sep}{scale * self.std:.{digits}f}{unit}"


def num(v: float | None, pct: bool, digits: int = 4) -> str:
    """``0.0712``, ``97.12 %`` (accuracies), ``—`` when there is none."""
    return Num(v, pct=pct, digits=digits).text()


def metric(name: str, value: float | None, compact: bool = False) -> str:
    """One value of a named metric, the one way every screen writes it: accuracies as ``97.12 %``,
    losses, PSNR, SSIM, F1 and IoU as ``0.0712`` (JSON keeps the raw number)."""
    return Num(value, pct=is_pct(name)).text(compact)


def mean_std(s: Mapping[str, Any] | None, pct: bool) -> str:
    """A stored :func:`summary` as ``0.0712 ± 0.0031`` or ``97.12 ± 0.31 %``."""
    return Num.summary(s, pct).text()


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
