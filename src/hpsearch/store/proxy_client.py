"""The storage a worker sees behind ``hpsearch storage-proxy``: ``grpc://HOST:PORT``.

Optuna's :class:`~optuna.storages.GrpcStorageProxy` forwards the storage API (studies,
trials, attributes) to one server process, so a thousand workers hold a handful of database
connections instead of a thousand. What it cannot forward is what hpsearch adds on top:
the budget lock (a file lock or a Postgres advisory lock, which needs the database itself)
and heartbeats (the gRPC storage is not an Optuna heartbeat storage). So the proxy serves a
second, small gRPC service beside Optuna's, and :class:`ProxyStorage` calls it for exactly
those: the three decisions of :mod:`hpsearch.store.budget`, taken *inside the proxy* under the
database's own lock, and the heartbeat of a running trial. See :mod:`hpsearch.store.proxy` for why
the decisions run there rather than as a lock lent to the worker.

The wire format of that service is JSON in gRPC's raw bytes (generic handlers): no generated
code, and each message is a small dict.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import optuna

from hpsearch.errors import BadStorageURL, StorageError
from hpsearch.store.compat import grpc_client_with
from hpsearch.store.storage import heartbeat_interval, with_retry

SCHEME = "grpc"
TLS_SCHEME = "grpcs"  # grpcs://HOST:PORT: the proxy serves TLS (storage-proxy --tls-cert/--tls-key)
TLS_CA_ENV = "HPSEARCH_PROXY_TLS_CA"  # a PEM file of the roots to trust (default: the system's)
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]  # as Optuna's own channel: a study can be large
SERVICE = "hpsearch.Budget"  # the proxy's own service, beside Optuna's StorageService
CONNECT_WAIT_S = 10.0  # for a proxy still starting (pods of a Job start together); HPSEARCH_PROXY_WAIT_S
INSTALL_HINT = "pip install 'hpsearch[grpc]'"


TOKEN_ENV = "HPSEARCH_PROXY_TOKEN"  # the shared secret itself
TOKEN_FILE_ENV = "HPSEARCH_PROXY_TOKEN_FILE"  # or a file holding it (a mounted Kubernetes Secret)
TOKEN_KEY = "x-hpsearch-token"  # the gRPC metadata every call carries it in


def proxy_token(file: str | os.PathLike[str] | None = None) -> str | None:
    """The proxy's shared secret: ``file`` (else ``$HPSEARCH_PROXY_TOKEN_FILE``) or ``$HPSEARCH_PROXY_TOKEN``;
    None when neither is set. Surrounding white space (a file's newline) is not part of it."""
    path = file or os.environ.get(TOKEN_FILE_ENV)
    if path:
        try:
            token = open(path).read().strip()  # noqa: SIM115 - read at once
        except OSError as err:
            raise StorageError(f"cannot read the storage proxy's token file {path}: {err.strerror}") from None
        if not token:
            raise StorageError(f"the storage proxy's token file {path} is empty; put the shared secret in it")
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _roots() -> bytes | None:
    """The PEM roots a grpcs:// client trusts: ``$HPSEARCH_PROXY_TLS_CA``, else the system's."""
    path = os.environ.get(TLS_CA_ENV)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise StorageError(f"cannot read {TLS_CA_ENV}={path}: {err.strerror}") from None


def parse(url: str) -> tuple[str, int]:
    """``grpc://HOST:PORT`` → (host, port), or one clear StorageError."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if (parts.scheme.lower() not in (SCHEME, TLS_SCHEME) or not parts.hostname or port is None or not 0 < port < 65536
            or parts.path not in ("", "/") or parts.query or parts.username or parts.password):
        raise BadStorageURL(f"bad storage proxy URL {url!r}; use grpc://HOST:PORT, e.g. grpc://127.0.0.1:13000 "
                           "(the address `hpsearch storage-proxy` listens on), or grpcs://HOST:PORT for one serving TLS")
    return parts.hostname, port


def require_grpc() -> Any:
    """The ``grpc`` module, or one line saying how to install it."""
    # gRPC's C core logs to stderr on its own (a port in use, a lost peer): we say it in one line
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        import grpc
    except ImportError:
        raise StorageError(f"the storage proxy (grpc://) needs grpcio, which is not installed: "
                           f"{INSTALL_HINT}") from None
    return grpc


def encode(message: Any) -> bytes:
    return json.dumps(message).encode()


def decode(data: bytes) -> Any:
    return json.loads(data) if data else None


def connect(url: str) -> ProxyStorage:
    """A :class:`ProxyStorage` on a running ``hpsearch storage-proxy``, or one clear StorageError:
    nothing listening, or a plain Optuna proxy (which could not keep the budget exact)."""
    host, port = parse(url)
    require_grpc()
    tls = url.strip().lower().startswith(f"{TLS_SCHEME}://")
    storage = ProxyStorage(host=host, port=port, url=url, token=proxy_token(), tls=tls, roots=_roots() if tls else None)
    wait = float(os.environ.get("HPSEARCH_PROXY_WAIT_S", CONNECT_WAIT_S))
    try:
        storage.wait_server_ready(timeout=wait)
    except ConnectionError:
        storage.close()
        raise StorageError(f"no storage proxy answers at {url} (waited {wait:g}s); start one with "
                           "`hpsearch storage-proxy --storage DATABASE_URL --port PORT`, or check HOST:PORT") from None
    storage.hello()
    return storage


with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    _Base = optuna.storages.GrpcStorageProxy


class ProxyStorage(_Base):
    """Optuna's gRPC storage client, plus hpsearch's budget decisions and heartbeats.

    Every storage call is retried while the proxy is unreachable (restarting), as
    :class:`hpsearch.store.storage.ResilientRDBStorage` retries while the database is.
    """

    def __init__(self, *, host: str, port: int, url: str, token: str | None = None,
                 tls: bool = False, roots: bytes | None = None) -> None:
        self.url = url
        self._interval: int | None = None
        # set before Optuna's __init__, which opens the channel (_setup)
        self._token, self._tls, self._roots = token, tls, roots
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=host, port=port)

    def _open_channel(self) -> Any:
        grpc = require_grpc()
        where = f"{self._host}:{self._port}"
        if self._tls:
            return grpc.secure_channel(where, grpc.ssl_channel_credentials(self._roots), options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(where, options=CHANNEL_OPTIONS)

    def _setup(self) -> None:
        """Optuna's stub and cache on our channel: TLS where the URL is grpcs://, and the shared
        secret added to every call."""
        channel = self._open_channel()
        if self._token:
            channel = require_grpc().intercept_channel(channel, _with_token(self._token))
        grpc_client_with(self, channel)

    def wait_server_ready(self, timeout: float | None = None) -> None:
        """Optuna's wait, on a channel like ours (its own is always plain: a TLS proxy never looked ready)."""
        grpc = require_grpc()
        with self._open_channel() as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=timeout)
            except grpc.FutureTimeoutError as err:
                raise ConnectionError("gRPC connection timeout") from err

    # -- hpsearch's service ---------------------------------------------------------------

    def _call(self, method: str, message: dict[str, Any]) -> Any:
        grpc = require_grpc()
        stub = self._channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=encode,
                                         response_deserializer=decode)
        try:
            return stub(message)
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                raise  # transient: with_retry waits for the proxy to come back
            if code == grpc.StatusCode.UNIMPLEMENTED:
                raise StorageError(f"{self.url} is a plain Optuna storage proxy, which cannot keep hpsearch's "
                                   "exact trial budget or heartbeats; serve the database with "
                                   "`hpsearch storage-proxy --storage DATABASE_URL` instead") from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise StorageError(f"storage proxy {self.url} refused this process: {TOKEN_ENV} (or {TOKEN_FILE_ENV}) "
                                   "is missing here or is not the proxy's; set it to the proxy's shared secret") from None
            if code == grpc.StatusCode.NOT_FOUND:
                raise KeyError(details) from None
            raise StorageError(f"storage proxy {self.url}: {details}") from None

    def _retried(self, method: str, message: dict[str, Any]) -> Any:
        return with_retry(lambda: self._call(method, message), self.url)

    def hello(self) -> dict[str, Any]:
        """The proxy's heartbeat settings: the grace period is the proxy's, since it fails stale trials."""
        reply = self._retried("Hello", {})
        self._interval = int(reply["interval_s"])
        return reply

    def decide(self, study: optuna.Study, n_trials: int, sampler: Any) -> optuna.Trial | str | None:
        """:func:`hpsearch.store.budget.decide`, taken by the proxy; a new trial comes back as its id and
        becomes this worker's :class:`optuna.Trial` (its sampler runs here, outside the lock)."""
        reply = self._retried("Decide", {"study": study.study_name, "n_trials": n_trials,
                                         "sampler": sampler.to_dict() if sampler is not None else None})
        if reply.get("trial_id") is None:
            return reply.get("wait")  # "wait" (WAIT) or None (budget met)
        return attach(study, int(reply["trial_id"]))

    def reclaim(self, study_name: str) -> tuple[int, dict[str, int]]:
        reply = self._retried("Reclaim", {"study": study_name})
        return int(reply["before"]), {k: int(v) for k, v in reply["counts"].items()}

    def create_if_absent(self, name: str, directions: Sequence[str], metric_names: list[str],
                         attrs: dict[str, Any]) -> bool:
        return bool(self._retried("CreateIfAbsent", {"study": name, "directions": directions,
                                                     "metric_names": metric_names, "attrs": attrs})["created"])

    def record_heartbeat(self, trial_id: int) -> None:
        self._retried("Heartbeat", {"trial_id": trial_id})

    def get_heartbeat_interval(self) -> int:
        return self._interval or heartbeat_interval()


def _with_token(token: str) -> Any:
    """A client interceptor adding the shared secret to each call's metadata (every storage call
    is unary, Optuna's and hpsearch's alike). Built on first use: grpcio is an optional install."""
    grpc = require_grpc()

    class WithToken(grpc.UnaryUnaryClientInterceptor):  # type: ignore[name-defined]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            metadata = (*(details.metadata or ()), (TOKEN_KEY, token))
            return continuation(details._replace(metadata=metadata), request)

    return WithToken()


def attach(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """The :class:`optuna.Trial` for a trial another process created: what ``Study.ask`` does
    after it has a trial id. ``Study.ask`` first drops the study's per-ask cache of trials
    (samplers read it through ``_get_trials(use_cache=True)``); without that, TPE would sample
    against the trials it saw at the first ask, for ever. That cache is private to Optuna:
    tests/store/test_proxy.py pins it."""
    study._thread_local.cached_all_trials = None
    return optuna.Trial(study, trial_id)


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(_Base, name)

    @functools.wraps(method)
    def call(self: ProxyStorage, *args: Any, **kwargs: Any) -> Any:
        return with_retry(lambda: method(self, *args, **kwargs), self.url)

    return call


for _name in (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "set_trial_param", "get_trial_id_from_study_id_trial_number",
    "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial", "get_all_trials",
):
    setattr(ProxyStorage, _name, _retrying(_name))
