"""Storage URL → Optuna RDB storage, plus the two things Optuna leaves to us.

1. A *budget lock*: counting trials and creating the next one happen under one lock held
   across processes (a file lock beside a SQLite file, a PostgreSQL advisory lock), which
   is what makes the global trial budget exact instead of "about T".
2. Heartbeats: a worker killed mid-trial leaves a RUNNING row behind; with heartbeats on,
   the next ask fails it and re-queues its parameters.

Every message that shows a URL shows it masked (no password).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hpsearch.errors import StorageError

DEFAULT_URL = "sqlite:///hpsearch.db"
HEARTBEAT_INTERVAL_S = 5
GRACE_PERIOD_S = 20
SQLITE_BUSY_TIMEOUT_S = 120

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# We run heartbeats ourselves around ask/tell (see Heartbeat below), which Optuna warns about.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def default_url() -> str:
    return os.environ.get("HPSEARCH_STORAGE") or DEFAULT_URL


def mask(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: show nothing secret-looking
        return url.split("@")[-1] if "@" in url else url


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"bad storage URL {mask(url)!r}; use e.g. sqlite:///hpsearch.db or "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageError(
            f"unsupported storage {mask(url)!r}; hpsearch supports sqlite:///FILE and "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        )
    return parsed


def sqlite_path(url: str) -> Path | None:
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise StorageError("in-memory SQLite cannot be shared by workers; use sqlite:///FILE")
    return Path(parsed.database)


def open_storage(url: str, *, create: bool) -> optuna.storages.RDBStorage:
    """Open (and with ``create``, initialise) the storage, or raise one clear StorageError.

    Without ``create`` a SQLite file that does not exist is an error, so read-only commands
    never leave an empty database behind.
    """
    parsed = _parse(url)
    engine_kwargs: dict[str, object] = {}
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            if not create:
                raise StorageError(
                    f"no study database at {path}; run `hpsearch run STUDY` first, or pass "
                    "--storage URL (or set HPSEARCH_STORAGE)"
                )
            if not path.parent.is_dir():
                raise StorageError(f"cannot create {path}: folder {path.parent} does not exist")
        _enable_wal(path)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
        _ping(parsed, url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_INTERVAL_S,
                grace_period=GRACE_PERIOD_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
    except (SQLAlchemyError, ImportError, ValueError, RuntimeError) as err:
        raise StorageError(f"cannot open storage {mask(url)}: {_first_line(err)}") from None


def _enable_wal(path: Path) -> None:
    """WAL lets readers (dashboard, progress) run beside a writer; the setting persists."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)) as con:
            con.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as err:
        raise StorageError(f"cannot open SQLite database {path}: {err}") from None


def _ping(parsed: URL, url: str) -> None:
    try:
        engine = sqlalchemy.create_engine(parsed, connect_args={"connect_timeout": 10})
        with engine.connect():
            pass
        engine.dispose()
    except (SQLAlchemyError, ImportError) as err:
        raise StorageError(f"cannot connect to {mask(url)}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def budget_lock(storage: optuna.storages.RDBStorage, url: str, study_name: str) -> Iterator[None]:
    """Serialise 'count trials, then create one' across every process on this study."""
    path = sqlite_path(url)
    if path is not None:
        from filelock import FileLock

        with FileLock(str(path) + ".lock", timeout=SQLITE_BUSY_TIMEOUT_S):
            yield
        return
    key = int.from_bytes(hashlib.sha256(f"hpsearch:{study_name}".encode()).digest()[:8], "big", signed=True)
    with storage.engine.connect() as con:
        con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})


class Heartbeat:
    """Records a trial's heartbeat every few seconds from a daemon thread while it runs."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        interval = self._storage.get_heartbeat_interval() or HEARTBEAT_INTERVAL_S
        while True:
            with contextlib.suppress(Exception):  # a missed beat is harmless; the next one retries
                self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(interval):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
