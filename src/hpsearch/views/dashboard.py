"""`hpsearch dashboard`: optuna-dashboard on the study database, with the artifact store wired in.

We serve optuna-dashboard's own WSGI app the way its CLI does (a threaded wsgiref server), so
the storage goes through hpsearch's URL checks and the artifact folder is the same one
``hpsearch best --retrain`` uploads to; a busy port is one clear line, not a traceback.

optuna-dashboard answers every request, deletes included, from anyone who reaches the port —
and through DNS rebinding a web page the user visits reaches 127.0.0.1 too. :class:`Guard`
wraps the app: requests must name an allowed host in their Host header, and unless
``--allow-writes`` only reads and notes (which hpsearch itself writes to the study) get through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from optuna_dashboard import wsgi

from hpsearch.errors import HpsearchError
from hpsearch.store.storage import mask, open_storage
from hpsearch.views.publish import artifact_store


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's signature
        pass


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
READ_METHODS = ("GET", "HEAD", "OPTIONS")


class Guard:
    """WSGI middleware: refuse foreign Host headers (DNS rebinding) and, unless writes are
    allowed, everything but reads and note edits (deleting studies, telling trials, …)."""

    def __init__(self, app: Callable[..., Any], host: str, allowed_hosts: tuple[str, ...] = (),
                 allow_writes: bool = False) -> None:
        self.app, self.allow_writes = app, allow_writes
        self.hosts = {h.lower().strip("[]") for h in (host, *LOCAL_NAMES, *allowed_hosts)}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        name = _hostname(environ.get("HTTP_HOST", ""))
        if "*" not in self.hosts and name not in self.hosts:
            return _refuse(start_response, f"host {name!r} is not allowed; start hpsearch dashboard with "
                                           f"--allowed-hosts {name or 'NAME'} if you meant to reach it by that name")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if not self.allow_writes and method not in READ_METHODS and not self._note_edit(environ):
            return _refuse(start_response, "this dashboard is read-only; start hpsearch dashboard with "
                                           "--allow-writes to change or delete studies from it")
        return self.app(environ, start_response)


    def _note_edit(self, environ: dict[str, Any]) -> bool:
        """A study's or a trial's note saved (PUT …/note), asked of the dashboard's own route table:
        a hand-written pattern expected a trailing /<version> that optuna-dashboard 0.21's routes do
        not have, and every note edit was refused."""
        router = getattr(self.app, "router", None)  # optuna-dashboard's app is a Bottle app
        if router is None:
            return False
        try:
            route, _ = router.match(environ)
        except Exception:  # noqa: BLE001 - bottle.HTTPError: no route (404) or another method (405)
            return False
        return str(route.method).upper() == "PUT" and str(route.rule).rstrip("/").endswith("/note")


def _hostname(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8080
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _refuse(start_response: Callable[..., Any], text: str) -> list[bytes]:
    body = (text + "\n").encode()
    start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def serve(url: str, host: str, port: int, artifacts: Path, *, log_requests: bool = False,
          ready: Callable[[str], None] | None = None, allowed_hosts: tuple[str, ...] = (),
          allow_writes: bool = False) -> None:
    """Serve until interrupted. ``ready`` gets the address once the socket is listening."""
    storage = open_storage(url, create=False)
    app = Guard(wsgi(storage, artifact_store=artifact_store(artifacts)), host, allowed_hosts, allow_writes)
    handler = WSGIRequestHandler if log_requests else _QuietHandler
    try:
        httpd = make_server(host, port, app, server_class=_ThreadedServer, handler_class=handler)
    except OSError as e:
        raise HpsearchError(f"cannot listen on {host}:{port}: {e.strerror or e}; "
                            "pick another port with --port") from None
    if ready is not None:
        ready(f"http://{host}:{port}/dashboard/ — {mask(url)}, artifacts in {artifacts}")
    with httpd:
        httpd.serve_forever()
