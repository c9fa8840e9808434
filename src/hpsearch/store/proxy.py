"""``hpsearch storage-proxy``: serve the study database over gRPC to many workers.

Past a few dozen workers, every worker holding its own connections (a pool, plus the budget
lock's session) is what a Postgres server runs out of first. The proxy is one process that
holds the connections; workers reach the study with ``--storage grpc://HOST:PORT``.

It serves two gRPC services on one port:

- Optuna's storage service (:func:`optuna.storages.run_grpc_proxy_server`'s servicer) on the
  database, behind Optuna's trial cache, as Optuna recommends;
- ``hpsearch.Budget`` (:class:`Budget`), for what hpsearch adds to Optuna's storage: the budget
  decisions of :mod:`hpsearch.store.budget` and trial heartbeats.

**Why the proxy takes the budget decisions itself** rather than lending workers a lock: the
budget lock (a file lock beside SQLite, a Postgres advisory lock) needs the database, and a
worker behind the proxy has none. A lock *lent* over gRPC would have to be held across the
worker's own round trips (count, enqueue a grid cell, ask, first heartbeat), and each waiting
worker would park a server thread, so with more waiters than threads the holder's calls could
never be served: a deadlock that grows with exactly the worker counts the proxy is for. Run
inside the proxy, a decision is the same code a direct worker runs (:func:`budget.decide`),
under the same database lock, so workers behind the proxy, direct workers and other proxies
on one database all share one exact budget. Only the new trial's id travels back; the
worker's own sampler then suggests its parameters, outside the lock, as it would anyway.

Stale trials are failed by the proxy, with the proxy's grace period (``HPSEARCH_GRACE_S`` in
*its* environment), which workers learn when they connect and beat four times within.
"""

from __future__ import annotations

import hmac
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna

from hpsearch.errors import BadStorageURL, HpsearchError, StorageError
from hpsearch.store import budget
from hpsearch.store.compat import grpc_servicer, study_id, trial_id
from hpsearch.store.proxy_client import SERVICE, TOKEN_ENV, TOKEN_KEY, decode, encode, require_grpc
from hpsearch.store.storage import (
    grace_period,
    heartbeat_interval,
    is_proxy_url,
    mask,
    open_storage,
    with_retry,
)
from hpsearch.study.samplers import SamplerSpec

DEFAULT_PORT = 13000
# Server threads. A call waiting for the budget lock parks one; heartbeats and reads need the
# rest. Database connections stay at the engine's pool size (SQLAlchemy's 5 + 10 overflow).
THREADS = 64
STOP_GRACE_S = 5.0


class Budget:
    """The ``hpsearch.Budget`` service: :mod:`hpsearch.store.budget`'s decisions and heartbeats.

    Calls for one study take a thread lock here before the database lock: on Postgres a
    thread waiting for the advisory lock holds a pooled connection, and enough waiters would
    leave the holder none to finish with (the pool is shared by every thread of the proxy).
    """

    def __init__(self, storage: optuna.storages.RDBStorage, url: str,
                 served: optuna.storages.BaseStorage | None = None) -> None:
        self.storage, self.url = storage, url
        self.served = served or storage  # what Optuna's service answers from (its trial cache)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, study: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(study, threading.Lock())

    def _study(self, name: str) -> optuna.Study:
        # A sampler with no state and no before_trial: the worker's own sampler samples.
        return optuna.load_study(study_name=name, storage=self.storage, sampler=optuna.samplers.RandomSampler())

    def hello(self, _msg: dict[str, Any]) -> dict[str, Any]:
        from hpsearch import __version__
        return {"hpsearch": __version__, "grace_s": grace_period(), "interval_s": heartbeat_interval()}

    def decide(self, msg: dict[str, Any]) -> dict[str, Any]:
        sampler = SamplerSpec.from_dict(msg["sampler"]) if msg.get("sampler") else None
        with self._lock(msg["study"]):
            got = with_retry(lambda: budget.decide(self._study(msg["study"]), self.storage, self.url,
                                                   int(msg["n_trials"]), sampler), self.url)
        if isinstance(got, optuna.Trial):
            # Optuna's trial cache refuses writes to a trial it has not seen ("KeyError" on the
            # worker's first suggest): let it read the new trial before the worker hears of it.
            self.served.get_all_trials(study_id(got.study), deepcopy=False)
            return {"trial_id": trial_id(got)}
        return {"wait": got}

    def reclaim(self, msg: dict[str, Any]) -> dict[str, Any]:
        with self._lock(msg["study"]):
            before, counts = with_retry(lambda: budget.reclaim(self._study(msg["study"]), self.storage, self.url),
                                        self.url)
        return {"before": before, "counts": counts}

    def create_if_absent(self, msg: dict[str, Any]) -> dict[str, Any]:
        with self._lock(msg["study"]):
            created = with_retry(lambda: budget.create_if_absent(self.storage, self.url, msg["study"],
                                                                 msg["directions"], msg["metric_names"],
                                                                 msg["attrs"]), self.url)
        return {"created": created}

    def heartbeat(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.storage.record_heartbeat(int(msg["trial_id"]))  # retried by the storage itself
        return {}

    def handler(self) -> Any:
        grpc = require_grpc()
        methods = {"Hello": self.hello, "Decide": self.decide, "Reclaim": self.reclaim,
                   "CreateIfAbsent": self.create_if_absent, "Heartbeat": self.heartbeat}
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(_answering(fn), request_deserializer=decode,
                                                      response_serializer=encode)
            for name, fn in methods.items()})


def _answering(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A gRPC method: a study that is not there is NOT_FOUND, an hpsearch error is its one line
    (FAILED_PRECONDITION), anything else the exception's type and message (INTERNAL)."""
    def method(msg: dict[str, Any], context: Any) -> dict[str, Any]:
        grpc = require_grpc()
        try:
            return fn(msg)
        except KeyError as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err))
        except HpsearchError as err:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
        except Exception as err:  # noqa: BLE001 - the client shows it as one line
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
        raise AssertionError("unreachable: context.abort raises")

    return method


def _add_optuna_service(server: Any, storage: optuna.storages.BaseStorage) -> None:
    """Register Optuna's storage servicer on ``server``. Optuna's public entry point
    (``run_grpc_proxy_server``) blocks and owns its server, so it cannot share a port with
    ``hpsearch.Budget`` or stop on a signal; its two parts are private (:mod:`hpsearch.store.compat`)."""
    servicer, add = grpc_servicer(storage)
    add(servicer, server)


def _require_token(token: str) -> Any:
    """A server interceptor refusing every call whose metadata lacks the shared secret (compared in
    constant time), before Optuna's or hpsearch's service sees it."""
    grpc = require_grpc()
    expected = token.encode()

    def deny(_request: Any, context: Any) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong storage proxy token")

    denied = grpc.unary_unary_rpc_method_handler(deny)

    class RequireToken(grpc.ServerInterceptor):  # type: ignore[name-defined]
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            given = dict(details.invocation_metadata or ()).get(TOKEN_KEY, "")
            return continuation(details) if hmac.compare_digest(str(given).encode(), expected) else denied

    return RequireToken()


def serve(url: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          ready: Callable[[str], None] | None = None, stop: threading.Event | None = None,
          token: str | None = None, no_token: bool = False, tls: tuple[Path, Path] | None = None) -> None:
    """Serve ``url`` until SIGINT/SIGTERM (or ``stop``); ``ready`` gets the address once listening.

    Every call must carry ``token``, the shared secret (:func:`proxy_token`): without one, any
    process that reaches the port — any local user, any pod of a cluster — could reset the test-look
    counter or delete studies. ``no_token`` serves without, and must be asked for. ``tls``
    (certificate chain, private key: PEM files) serves TLS, so the token and the study data are not
    sent in clear; clients then use ``grpcs://HOST:PORT``.

    Bad input is one :class:`StorageError`: a URL that is not a database, a database that
    cannot be opened, an address that cannot be bound (in use, or not this machine's), no token.
    """
    if token is None and not no_token:
        raise StorageError(f"the storage proxy needs a shared secret: set {TOKEN_ENV} (or --token-file FILE) here "
                           "and the same on every worker and dashboard; --no-token serves without one (only where "
                           "every process that can reach the port is trusted)")
    if is_proxy_url(url):
        raise BadStorageURL(f"the storage proxy serves a database, not another proxy ({url}); pass "
                           "--storage sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB")
    if not 0 <= port < 65536:
        raise StorageError(f"--port must be 0-65535, got {port}")
    grpc = require_grpc()
    storage = open_storage(url, create=True)  # the proxy's workers cannot create the schema themselves
    # so_reuseport off: gRPC sets it by default, and a second proxy would then share the port silently
    server = grpc.server(ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="hpsearch-proxy"),
                         options=[("grpc.so_reuseport", 0)], interceptors=[_require_token(token)] if token else [])
    served = optuna.storages.get_storage(storage)  # Optuna's trial cache over our storage, as Optuna advises
    _add_optuna_service(server, served)
    server.add_generic_rpc_handlers((Budget(storage, url, served).handler(),))
    credentials = None
    if tls is not None:
        try:
            chain, key = (Path(f).read_bytes() for f in tls)
        except OSError as err:
            raise StorageError(f"cannot read the TLS certificate or key {err.filename}: {err.strerror}") from None
        credentials = grpc.ssl_server_credentials([(key, chain)])
    try:
        bound = (server.add_secure_port(f"{host}:{port}", credentials) if credentials is not None
                 else server.add_insecure_port(f"{host}:{port}"))
    except RuntimeError:
        bound = 0
    if not bound:
        raise StorageError(f"cannot listen on {host}:{port} (in use, or not an address of this machine); "
                           "pick another with --port or --host")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: stop.set())
    server.start()
    try:
        if ready is not None:
            ready(f"{'grpcs' if credentials is not None else 'grpc'}://{host}:{bound} — serving {mask(url)}")
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(STOP_GRACE_S).wait()
        storage.engine.dispose()
