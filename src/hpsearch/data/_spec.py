"""Which data a study names, and where its files live: the torch-free part of ``hpsearch.data``.

Kept apart from the loaders so that read-only commands (``best``, ``trials``, ``studies``)
can rebuild a study's stored settings without importing torch, which costs ~1.5 s per call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.data._sources import DatasetInfo, Source, get_source


def default_data_root() -> Path:
    """``$HPSEARCH_DATA``, else a per-user cache folder (``$XDG_CACHE_HOME/hpsearch/data``)."""
    if os.environ.get("HPSEARCH_DATA"):
        return Path(os.environ["HPSEARCH_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hpsearch" / "data"


@dataclass(frozen=True)
class DataSpec:
    """Which data a study trains on and how its validation set is cut. Stored in the study."""

    dataset: str | Source  # a built-in's name, or a dataset object from hpsearch.data.datasets
    val_fraction: float = 0.2
    split_seed: int = 0
    train_subset: int | None = None  # cap on training images (stratified), for quick searches

    def __post_init__(self) -> None:
        get_source(self.dataset)  # raises on an unknown name
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.train_subset is not None and self.train_subset < 1:
            raise ValueError(f"train_subset must be >= 1, got {self.train_subset}")

    @property
    def source(self) -> Source:
        return get_source(self.dataset)

    @property
    def info(self) -> DatasetInfo:
        return self.source.info

    @property
    def label(self) -> str:
        return self.source.label

    def stored(self) -> str | dict[str, Any]:
        """What the study's settings keep: the name of a built-in, the spec of anything else."""
        return self.dataset if isinstance(self.dataset, str) else self.dataset.spec()

    @staticmethod
    def restore(value: str | dict[str, Any]) -> str | Source:
        """The inverse of :meth:`stored` (a name is checked against the registry)."""
        if isinstance(value, str):
            return value
        from hpsearch.data.datasets import from_spec

        return from_spec(value)
