"""The one door to a test split: sealed in search workers, and every opening counted.

Every source's :meth:`~hpsearch.data.Source.read` of ``"test"`` calls :func:`admit` first.

* A search worker is sealed when it starts, before the study module is imported
  (:func:`seal`); the seal is also put in the environment, so processes that user code
  starts from a worker are sealed too. There is no way to unseal from the library's API.
* Outside a worker, a test read must bring a ``look``: a function that records the look
  (``hpsearch best --retrain`` writes it to the study before the first image is read). A
  read without one is refused, so no code path reads test data without counting it.

This protects against accidents — a study module or helper that loads the test split while
tuning, a script that evaluates on it and forgets to say so. It is not a sandbox: Python code
running in the worker can read the files directly, and nothing here can prevent that.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hpsearch.errors import TestSplitForbidden

SEAL_ENV = "HPSEARCH_TEST_SEALED"

Look = Callable[[], Any]


def seal() -> None:
    """From now on this process and the processes it starts cannot read a test split."""
    os.environ[SEAL_ENV] = "1"
    _sealed.add(True)


def sealed() -> bool:
    return bool(_sealed) or os.environ.get(SEAL_ENV) == "1"


_sealed: set[bool] = set()  # grows, never shrinks: `seal` has no inverse


def admit(dataset: str, look: Look | None) -> None:
    """Let a test read through (after counting it), or raise :class:`TestSplitForbidden`."""
    if sealed():
        raise TestSplitForbidden(
            f"{dataset}: the test split cannot be read during a search; "
            "evaluate it once with `hpsearch best STUDY --retrain`"
        )
    if look is None:
        raise TestSplitForbidden(
            f"{dataset}: a test split is read only with a look that records it "
            "(`hpsearch best STUDY --retrain` counts each one); pass look=... to say who counts it"
        )
    look()
