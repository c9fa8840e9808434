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
import functools
import hashlib
import os
import shutil
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hpsearch.errors import BadStorageURL, StorageError

T = TypeVar("T")

DEFAULT_URL = "sqlite:///hpsearch.db"
DB_RETRY_S = 120.0  # how long a worker keeps retrying while the database is away
GRACE_PERIOD_S = 20  # a running trial whose heartbeat is this old belongs to a dead worker


def grace_period() -> int:
    """Seconds without a heartbeat before a trial counts as abandoned (``HPSEARCH_GRACE_S``)."""
    return max(2, int(os.environ.get("HPSEARCH_GRACE_S", GRACE_PERIOD_S)))


def heartbeat_interval() -> int:
    """Four beats per grace period, so one or two missed beats never fail a live trial."""
    return max(1, grace_period() // 4)
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
        raise BadStorageURL(
            f"bad storage URL {mask(url)!r}; use e.g. sqlite:///hpsearch.db or "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadStorageURL(
            f"unsupported storage {mask(url)!r}; hpsearch supports sqlite:///FILE, "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB and grpc://HOST:PORT or grpcs://HOST:PORT (hpsearch storage-proxy)"
        )
    return parsed


def is_proxy_url(url: str) -> bool:
    """``grpc://HOST:PORT`` (``grpcs://`` with TLS): the study database is served by ``hpsearch storage-proxy``."""
    return url.strip().lower().startswith(("grpc://", "grpcs://"))


def sqlite_path(url: str) -> Path | None:
    if is_proxy_url(url):
        return None  # the file, if any, is the proxy's
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BadStorageURL("in-memory SQLite cannot be shared by workers; use sqlite:///FILE")
    return Path(parsed.database)


def open_storage(url: str, *, create: bool) -> ResilientRDBStorage:
    """Open (and with ``create``, initialise) the storage, or raise one clear StorageError.

    Without ``create`` a SQLite file that does not exist is an error, so read-only commands
    never leave an empty database behind. A ``grpc://`` URL opens a client of
    ``hpsearch storage-proxy`` (:mod:`hpsearch.store.proxy_client`) instead: the proxy owns the database.
    """
    if is_proxy_url(url):
        from hpsearch.store.proxy_client import connect

        return connect(url)  # type: ignore[return-value]
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
        elif not _writable(path):
            if not create:
                return _open_read_only(url, path)
            raise StorageError(f"the database {path} is read-only; `hpsearch studies`, `trials`, `best` and "
                               "`report` still read it; copy it somewhere writable (or remount) to run")
        _enable_wal(path)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
        _ping(parsed, url)
    try:
        # Two processes initialising an empty database at once race on its tables: serialise.
        with warnings.catch_warnings(), _lock(url, "hpsearch:schema"):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = ResilientRDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval(),
                grace_period=grace_period(),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
    except (SQLAlchemyError, ImportError, ValueError, RuntimeError) as err:
        raise StorageError(f"cannot open storage {mask(url)}: {_first_line(err)}") from None
    if path is not None:
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # reconnect, so every pooled connection gets the pragmas
    return storage


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # In WAL mode, synchronous=NORMAL cannot corrupt the database; it skips an fsync per
    # commit (a trial makes a dozen small commits), at the cost of the last commits on power loss.
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _writable(path: Path) -> bool:
    """Can SQLite write here? It needs the file and its folder (journal, WAL, our lock files);
    ``access`` also says no on a read-only file system, even to root."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _open_read_only(url: str, path: Path) -> ResilientRDBStorage:
    """Read a database we cannot write (a read-only mount, a copy on a DVD): no lock file, no
    WAL switch. A WAL database without its ``-shm`` file beside it opens only as immutable,
    which reads the main file as it is (what a finished study's database holds)."""
    last: Exception | None = None
    for query in ("mode=ro", "mode=ro&immutable=1"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = ResilientRDBStorage(f"sqlite:///file:{path.resolve()}?{query}&uri=true")
            storage.get_all_studies()
            return storage
        except (SQLAlchemyError, ValueError, RuntimeError) as err:
            last = err
    raise StorageError(f"cannot read the read-only database {path}: {_first_line(last)}")  # type: ignore[arg-type]


def _enable_wal(path: Path) -> None:
    """WAL lets readers (dashboard, progress) run beside a writer; the setting persists."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)) as con:
            con.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as err:
        reason = fatal_reason(err, path)
        if reason is not None:
            raise StorageError(f"cannot write to the database {path}: {reason} ({err}); fix that, then rerun "
                               "the same command to resume") from None
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
    """The cause in one line: a database driver's own message (not the wrapper Optuna puts around a
    failed commit), or a gRPC call's status and details (whose ``str`` is a multi-line repr that
    began ``<_InactiveRpcError of RPC that terminated with:``)."""
    err = _cause(err)  # Optuna's wrapper says "invalid data in the commit" for any failed commit, a lost server too
    code, details = getattr(err, "code", None), getattr(err, "details", None)
    if callable(code) and callable(details):
        status = code()
        return f"gRPC {getattr(status, 'name', status)}: {(details() or '').strip() or 'no details'}"
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# SQLite result codes (the primary code is the low byte of an extended one)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 5, 6, 8, 10, 13
# Postgres SQLSTATE classes that waiting cannot fix: data (22), constraints (23), a schema that
# is not Optuna's (42: undefined table or column), and the fatal ones named below. Every other
# operational error (a restart shows up as a dozen different ones) is retried.
_PG_PERMANENT = ("22", "23", "42")
_PG_FATAL = {"53100": "its disk is full", "25006": "it is read-only"}


def _cause(err: BaseException) -> BaseException:
    return err.__cause__ if isinstance(err, optuna.exceptions.StorageInternalError) and err.__cause__ else err


def _transient(err: BaseException) -> bool:
    """Connection lost / server restarting / SQLite busy: worth retrying, not a bug.

    Only those. A damaged or foreign schema (``no such table``) or a full disk will not heal
    by waiting; retrying them for two minutes and calling it "lost the database" hid the
    real cause (:func:`fatal_reason` names the ones we can explain).
    """
    cause = _cause(err)
    if isinstance(cause, sqlalchemy.exc.PendingRollbackError):
        # the session's connection died mid-transaction and the code went on using it (Optuna's
        # trial read does: it takes the first error for "too many IN variables" and queries
        # again); the error that ended the transaction is the one that says what happened
        return _transient(cause.__context__) if cause.__context__ is not None else True
    if _grpc_unavailable(cause):  # the storage proxy is restarting, or the network between
        return True
    if isinstance(cause, (sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError)):
        return True
    if not isinstance(cause, sqlalchemy.exc.OperationalError):
        return False
    if getattr(cause, "connection_invalidated", False):
        return True
    orig = getattr(cause, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    state = getattr(orig, "sqlstate", None) or ""
    if isinstance(orig, sqlite3.Error):  # SQLite without a result code: only "locked" is transient
        return "database is locked" in str(orig).lower()
    return not (state.startswith(_PG_PERMANENT) or state in _PG_FATAL)


def _grpc_unavailable(err: BaseException) -> bool:
    """A gRPC call that found no proxy to answer it (without importing grpc for the others)."""
    code = getattr(err, "code", None)
    if not callable(code) or not type(err).__module__.startswith("grpc"):
        return False
    try:
        return getattr(code(), "name", "") == "UNAVAILABLE"
    except Exception:  # noqa: BLE001 - not an RpcError after all
        return False


def fatal_reason(err: BaseException, path: Path | None = None) -> str | None:
    """Why the database cannot take writes at all (disk full, read-only), or None.

    SQLite reports a full disk as SQLITE_FULL when a page write fails, but as a plain "disk
    I/O error" when it cannot even grow its WAL index: with the file's ``path`` we look at
    the free space to tell which.
    """
    orig = getattr(_cause(err), "orig", None) or _cause(err)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF == _SQLITE_FULL or (code & 0xFF == _SQLITE_IOERR and _full(path))):
        return "its disk is full"
    if code is not None and code & 0xFF == _SQLITE_READONLY:
        return "it is read-only"
    if code is not None and code & 0xFF == _SQLITE_IOERR:
        return "the disk reported an I/O error"
    return _PG_FATAL.get(getattr(orig, "sqlstate", None) or "")


def retry_for() -> float:
    return float(os.environ.get("HPSEARCH_DB_RETRY_S", DB_RETRY_S))


def _full(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        return shutil.disk_usage(path.parent).free < 256 * 1024
    except OSError:
        return False


def with_retry(fn: Callable[[], T], url: str) -> T:
    """Call ``fn``; while the database is unreachable retry with backoff, then one clear error."""
    delay, deadline, warned = 0.2, None, False
    while True:
        try:
            return fn()
        except Exception as err:
            reason = fatal_reason(err, sqlite_path(url))
            if reason is not None:
                where = sqlite_path(url) or mask(url)
                raise StorageError(f"cannot write to the database {where}: {reason} ({_first_line(err)}); "
                                   "fix that, then rerun the same command to resume") from None
            if not _transient(err):
                raise
            now = time.monotonic()
            deadline = deadline or now + retry_for()
            if now >= deadline:
                what = "storage proxy" if is_proxy_url(url) else "database"
                raise StorageError(f"lost the {what} {mask(url)} for {retry_for():.0f}s "
                                   f"({_first_line(err)}); check that it is running, then rerun to resume") from None
            if not warned:
                print(f"hpsearch: {'storage proxy' if is_proxy_url(url) else 'database'} {mask(url)} unreachable ({_first_line(err)}); retrying for up to "
                      f"{retry_for():.0f}s", file=sys.stderr, flush=True)
                warned = True
            time.sleep(min(delay, max(0.0, deadline - now)))
            delay = min(2 * delay, 2.0)  # short: heartbeats must resume soon after the database


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """An RDBStorage whose database calls survive a database restart (retry with backoff).

    Creating a trial is not idempotent: if the connection drops after the server committed
    but before it answered, a retry can create one extra trial. That window is tiny and the
    extra trial is an ordinary one, so we accept it rather than lose the worker.
    """


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return with_retry(lambda: method(self, *args, **kwargs), self.url)

    return call


for _name in (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
    "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
    "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial", "get_all_trials", "_get_trials", "get_n_trials", "get_best_trial", "_get_best_trial_id",
    "record_heartbeat", "_get_stale_trial_ids",
):
    if hasattr(optuna.storages.RDBStorage, _name):
        setattr(ResilientRDBStorage, _name, _retrying(_name))


def lock_file(path: Path, suffix: str) -> Path:
    """The lock file of a SQLite database: beside the file itself, however the URL reached it.

    A lock is only a lock if every process agrees on it, and the path as typed does not say
    which file it is: through a symlink (to the file or to a folder above it), a relative path or
    ``..``, two ``best --retrain --force`` runs took two lock files, both looked at the test
    split at once and wrote over each other's checkpoints. The resolved path names the file the
    processes really open. Postgres needs nothing of the kind: an advisory lock belongs to the
    server's database, whichever host name or address a URL reached it by. Not covered: two hard
    links to one file (SQLite itself keeps its journal beside each name, so it does not support them).
    """
    real = path.resolve()
    return real.with_name(real.name + suffix)


def budget_lock(storage: optuna.storages.BaseStorage, url: str,
                study_name: str) -> contextlib.AbstractContextManager[None]:
    """Serialise 'count trials, then create one' across every process on this study."""
    return _lock(url, f"hpsearch:study:{study_name}", getattr(storage, "engine", None))


@contextlib.contextmanager
def _lock(url: str, name: str, engine: sqlalchemy.engine.Engine | None = None) -> Iterator[None]:
    """A lock shared by every process using this database: a file lock beside a SQLite file
    (SQLite is single-machine anyway), a session advisory lock on PostgreSQL.

    Both wait as long as it takes. The holder is alive by construction (the kernel drops a dead
    process's ``flock``; the server a dead session's advisory lock) and each hold is one short
    decision, but on a loaded machine many workers queue for it: 16 workers in each of three test
    suites on 2 cores waited over 120 s, the file lock's old timeout, and the run failed with
    "The file lock … could not be acquired" although nothing was wrong but the wait.
    """
    path = sqlite_path(url)
    if path is not None:
        from filelock import FileLock

        with FileLock(lock_file(path, ".lock"), timeout=-1):
            yield
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    own = engine is None
    eng = engine if engine is not None else sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with eng.connect() as con:
            con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            con.commit()
            try:
                yield
            finally:
                _unlock(con, key)
    finally:
        if own:
            eng.dispose()


def _unlock(con: sqlalchemy.engine.Connection, key: int) -> None:
    """Release a session-level advisory lock; a session lost meanwhile has released it already.

    A database restart while the lock is held ends the session and with it the lock. Raising
    then would make the caller redo work the block has done: a worker's ask, retried as a
    whole, created a second trial and left the first RUNNING with nobody to run it, until its
    heartbeat went stale and it was failed (the Postgres-restart test's occasional FAIL).
    """
    try:
        con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        con.commit()
    except SQLAlchemyError as err:
        if not _transient(err):
            raise
        con.invalidate()  # never hand this connection back to the pool


@contextlib.contextmanager
def try_exclusive(url: str, name: str) -> Iterator[bool]:
    """A named lock for a long task (minutes), taken without waiting: yields whether we hold it.

    Apart from :func:`budget_lock` (which workers take for milliseconds per trial): a lock file
    of its own beside a SQLite file, a session-level ``pg_try_advisory_lock`` on Postgres.
    Both are released by the kernel or the server when the holder dies, so a killed task
    never leaves the lock taken.
    """
    if is_proxy_url(url):
        raise StorageError(f"`best --retrain` and `compare --test` take a lock in the database itself (one look "
                           f"at the test split at a time), which a client of the storage proxy {url} cannot reach; "
                           "pass the database URL the proxy serves (--storage sqlite:///… or postgresql+psycopg://…)")
    key = hashlib.sha256(name.encode()).digest()[:8]
    path = sqlite_path(url)
    if path is not None:
        from filelock import FileLock, Timeout

        lock = FileLock(lock_file(path, f".{key.hex()}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
        return
    k = int.from_bytes(key, "big", signed=True)
    eng = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with eng.connect() as con:
            got = bool(con.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": k}).scalar())
            con.commit()
            try:
                yield got
            finally:
                if got:
                    _unlock(con, k)
    finally:
        eng.dispose()


class Heartbeat:
    """Records a trial's heartbeat every few seconds from a daemon thread while it runs."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        interval = self._storage.get_heartbeat_interval() or heartbeat_interval()
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
