"""Data: read a split once, cut a stratified validation set, keep it resident as tensors.

Public names: :class:`DataSpec` (stored with a study), :func:`prepare` (before a search:
files checked, cache built, content hashed), :func:`load_search_data` (train/val only),
:func:`load_test_data` (the held-out split, refused in search workers and counted
elsewhere), the batch augmentations in :data:`AUGMENTS`, and the built-ins in :data:`SOURCES`.
Dataset objects for your own data are in :mod:`hpsearch.data.datasets`.

Names resolve lazily (PEP 562): ``from hpsearch.data import DataSpec`` does not import torch,
so the read-only commands start in a fraction of a second; the loaders import it when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AUGMENTS": "_augment",
    "SearchData": "_resident", "Tensors": "_resident", "check_available": "_resident",
    "forbid_test_split": "_resident", "load_search_data": "_resident", "load_test_data": "_resident",
    "refit_data": "_resident", "read_checked": "_resident",
    "prepare": "_resident",
    "SOURCES": "_sources", "DatasetInfo": "_sources", "Source": "_sources", "get_source": "_sources",
    "seal": "_gate", "sealed": "_gate",
    "DataSpec": "_spec", "default_data_root": "_spec",
    "stratified_split": "_split",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from hpsearch.data._augment import AUGMENTS
    from hpsearch.data._gate import seal, sealed
    from hpsearch.data._resident import (
        SearchData,
        Tensors,
        check_available,
        forbid_test_split,
        load_search_data,
        load_test_data,
        prepare,
        read_checked,
        refit_data,
    )
    from hpsearch.data._sources import SOURCES, DatasetInfo, Source, get_source
    from hpsearch.data._spec import DataSpec, default_data_root
    from hpsearch.data._split import stratified_split
