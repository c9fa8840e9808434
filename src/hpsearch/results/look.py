"""The one door to a study's test split: an exclusive look, counted before it happens.

``best --retrain`` and ``compare --test`` both look at the test split, and both go through
:func:`look_at_test_split`, which is the only caller of :func:`hpsearch.data.load_test_data`:

1. it takes the study's exclusive lock (``store.storage.try_exclusive``: the database's own, so
   two spellings of one database share it), and refuses at once if another look holds it, since a
   second look would only repeat the first;
2. :meth:`Look.read` counts the look *before* the first test image is read: the study counter
   ``hpsearch:test_looks`` and a pending marker naming the look are written first (write-ahead),
   so a look killed half-way over-counts, never hides;
3. :meth:`Look.record` writes the result and clears the marker in one place. A marker left
   behind is a look that was killed: the next look says so and its record lists it.

The counter is the one count of looks; records keep only their own look's number. What this
does not guard against: code that reads the dataset's files itself (the data gate refuses
search workers, and counts any read that goes through it; it cannot stop a determined user).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
import torch

from hpsearch.data import DataSpec, Tensors, load_test_data
from hpsearch.errors import HpsearchError
from hpsearch.store.compat import backend_of, storage_of
from hpsearch.store.records import (
    ComparisonRecord,
    PendingLook,
    RetrainRecord,
    close_look,
    count_look,
    looks_counted,
    pending_look,
)
from hpsearch.store.storage import try_exclusive


def _lock_name(study: optuna.Study) -> str:
    return f"hpsearch:retrain:{study.study_name}"  # the name every version has taken: old and new exclude each other


def storage_url(study: optuna.Study) -> str:
    """The database URL the study's storage opened: the lock lives in that database."""
    url = getattr(backend_of(storage_of(study)), "url", None)
    if not isinstance(url, str):
        raise HpsearchError("a look at the test split takes a lock in the study's database, which this storage "
                            "(the storage proxy?) does not reach; pass the database URL itself with --storage")
    return url


@dataclass
class Look:
    """One look at the test split, under way: its number, and the earlier one that was killed, if any."""

    study: optuna.Study
    what: str  # "retrain" or "compare --test": said when a killed look is found later
    number: int
    interrupted: PendingLook | None  # the pending marker an earlier, killed look left
    detail: dict[str, Any] = field(default_factory=dict)  # kept in the pending marker (trial, seeds, …)
    _counted: bool = False

    @property
    def killed_line(self) -> str | None:
        """What to tell the user about the earlier look this one found killed, if any."""
        lost = self.interrupted
        return None if lost is None else f"an earlier {lost['what']} was killed during test look {lost['look']}; that look counts"

    def read(self, spec: DataSpec, root: Path, mean: torch.Tensor, std: torch.Tensor,
             device: torch.device | str = "cpu", **detail: Any) -> Tensors:
        """The test split, normalised as the training data was; counted before its first image."""
        if self._counted:
            raise HpsearchError(f"test look {self.number} has read the test split already; one read per look")
        self.detail.update(detail)
        return load_test_data(spec, root, mean, std, device, look=self._count)

    def _count(self) -> None:
        count_look(self.study, cast(PendingLook, {**self.detail, "look": self.number, "what": self.what}))
        self._counted = True

    def record(self, record: RetrainRecord | ComparisonRecord) -> None:
        """Store the look's record and close the look."""
        close_look(self.study, record)


@contextlib.contextmanager
def look_at_test_split(study: optuna.Study, what: str, url: str | None = None) -> Iterator[Look]:
    """Hold the study's one look at its test split (see the module docstring)."""
    with try_exclusive(url or storage_url(study), _lock_name(study)) as mine:
        if not mine:
            raise HpsearchError(f"another `hpsearch best --retrain` of study {study.study_name!r} is running "
                                "(or a `compare --test`: one look at the test split at a time); wait for it to "
                                "finish, then rerun to see its record")
        yield Look(study, what, looks_counted(study) + 1, pending_look(study))
