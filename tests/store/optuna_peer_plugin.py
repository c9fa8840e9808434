"""A pytest plugin for a run of Optuna's own storage tests (from its sdist) over hpsearch's storage.

Loaded with ``-p optuna_peer_plugin`` into the pytest runs that ``test_optuna_peer.py`` starts
(``tests/`` on ``PYTHONPATH``). Importing it changes nothing; as a plugin (``pytest_configure``):

1. Optuna's tests get their storages from ``optuna.testing.storages.StorageSupplier``. For the
   ``sqlite`` and ``cached_sqlite`` modes it now returns ``hpsearch.store.storage.open_storage(
   "sqlite:///FILE", create=True)`` — a ``ResilientRDBStorage`` with our WAL switch, busy
   timeout, pragmas, schema lock and retries — and ``cached_sqlite`` wraps that in Optuna's
   ``_CachedStorage``, as ``optuna.create_study(storage=...)`` does with every RDBStorage. The
   arguments a test passes to the supplier (``heartbeat_interval``, ``grace_period``,
   ``heartbeat_stale_trial_callback``) replace ours in the one ``ResilientRDBStorage(...)`` call
   inside ``open_storage``, so they take the path our own settings take; without them the
   storage keeps hpsearch's heartbeat settings, as every hpsearch storage has them.
2. ``STORAGE_MODES`` is cut to those two modes: the others (in-memory, journal, Redis, gRPC)
   test Optuna's storages, not ours.
3. The deliberate differences (``EXPECTED_FAILURES``) are marked ``xfail(strict=True,
   raises=...)``: one that starts passing, or fails with another exception, fails the run, as
   does any other failure.
4. With ``HPSEARCH_PEER_SHARD=K/N`` it keeps every N-th test from the K-th (0-based), so N
   processes share the run; most of its time is heartbeat tests sleeping, which overlap.
5. Every test's outcome goes to the JSON file named by ``HPSEARCH_PEER_REPORT``, with the
   number of storages ``open_storage`` made and the expected failures it did not collect.

``HPSEARCH_PEER_STORAGE=optuna`` keeps Optuna's own supplier (same two modes, no xfails): the
baseline, to compare by hand.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest

MODES = ["sqlite", "cached_sqlite"]

_RAISES = (
    "deliberate: Optuna expects RDBStorage's ValueError ('The value of `heartbeat_interval` "
    "should be a positive integer.') from a supplier given heartbeat_interval=-1 (then "
    "grace_period=-1); open_storage turns every ValueError from building the storage into "
    "hpsearch.errors.StorageError ('cannot open storage sqlite:///...: The value of ...'), the "
    "domain error the CLI prints as one line with exit code 1"
)
_WARNS = (
    "deliberate: Optuna expects one ExperimentalWarning ('heartbeat_interval' is an experimental "
    "argument) from RDBStorage(heartbeat_interval=2); open_storage builds the storage under "
    "warnings.simplefilter('ignore', ExperimentalWarning), since every hpsearch storage has "
    "heartbeats on and every worker and command would print it"
)
# Node id (from the sdist's tests/storages_tests/ on) -> why hpsearch differs on purpose, and
# the one exception that failure must be (any other is a real failure): hpsearch's StorageError,
# or pytest's Failed ("DID NOT WARN").
EXPECTED_FAILURES: dict[str, tuple[str, str]] = {
    **{f"test_heartbeat.py::test_invalid_heartbeat_interval_and_grace_period[{m}]": (_RAISES, "StorageError")
       for m in MODES},
    **{f"test_heartbeat.py::test_heartbeat_experimental_warnings[{m}]": (_WARNS, "Failed") for m in MODES},
}

_ours = os.environ.get("HPSEARCH_PEER_STORAGE", "hpsearch") != "optuna"
_outcomes: dict[str, str] = {}
_missing: list[str] = []
_opened = 0


@contextmanager
def _test_arguments(hpstorage: types.ModuleType, extra: dict[str, Any]) -> Iterator[None]:
    """Inside open_storage, build the storage with the test's arguments over ours."""
    if not extra:
        yield
        return
    cls = hpstorage.ResilientRDBStorage

    def build(url: str, **kwargs: Any) -> Any:
        return cls(url, **{**kwargs, **extra})

    with mock.patch.object(hpstorage, "ResilientRDBStorage", build):
        yield


def _use_hpsearch_storage() -> None:
    import optuna
    import optuna.testing.storages as supplier
    from optuna.testing.tempfile_pool import NamedTemporaryFilePool

    from hpsearch.store import storage as hpstorage

    optuna_enter = supplier.StorageSupplier.__enter__

    def enter(self: supplier.StorageSupplier) -> Any:
        global _opened
        if self.storage_specifier not in MODES:
            return optuna_enter(self)
        self.tempfile = NamedTemporaryFilePool().tempfile()
        with _test_arguments(hpstorage, self.extra_args):
            rdb = hpstorage.open_storage(f"sqlite:///{self.tempfile.name}", create=True)
        assert type(rdb) is hpstorage.ResilientRDBStorage, type(rdb)
        _opened += 1
        self.storage = optuna.storages._CachedStorage(rdb) if "cached" in self.storage_specifier else rdb
        return self.storage

    supplier.StorageSupplier.__enter__ = enter  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    if "fakeredis" not in sys.modules:  # optuna.testing.storages imports it for the Redis mode only
        try:
            import fakeredis  # noqa: F401
        except ImportError:
            sys.modules["fakeredis"] = types.ModuleType("fakeredis")
    import optuna.testing.storages as supplier

    supplier.STORAGE_MODES[:] = MODES  # in place: test_storages.py imports this very list
    assert supplier.STORAGE_MODES_HEARTBEAT == MODES, supplier.STORAGE_MODES_HEARTBEAT
    if _ours:
        _use_hpsearch_storage()


def _key(item_or_report: Any) -> str:
    return item_or_report.nodeid.split("storages_tests/", 1)[-1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from hpsearch.errors import StorageError

    raises = {"StorageError": StorageError, "Failed": pytest.fail.Exception}
    expected = EXPECTED_FAILURES if _ours else {}
    seen = set()
    for item in items:
        if _key(item) in expected:
            reason, error = expected[_key(item)]
            item.add_marker(pytest.mark.xfail(strict=True, raises=raises[error], reason=reason))
            seen.add(_key(item))
    _missing.extend(sorted(set(expected) - seen))  # of the whole collection, before sharding
    shard = os.environ.get("HPSEARCH_PEER_SHARD")
    if shard:
        k, n = (int(x) for x in shard.split("/"))
        config.hook.pytest_deselected(items=[it for i, it in enumerate(items) if i % n != k])
        items[:] = items[k::n]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One outcome per test: passed, failed, error (setup/teardown), skipped, xfailed, xpassed."""
    if report.when != "call" and report.outcome == "passed":
        return
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.failed and report.when != "call":
        outcome = "error"
    else:
        outcome = report.outcome
    if _outcomes.get(_key(report), "passed") == "passed":  # a teardown error overrides a pass
        _outcomes[_key(report)] = outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("HPSEARCH_PEER_REPORT")
    if path:
        import optuna

        with open(path, "w") as f:
            json.dump({"storage": "hpsearch" if _ours else "optuna", "optuna": optuna.__version__,
                       "outcomes": _outcomes, "missing_expected": _missing, "opened": _opened,
                       "exitstatus": int(exitstatus)}, f, indent=1, sort_keys=True)
