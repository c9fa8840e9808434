"""`hpsearch dashboard`: optuna-dashboard on the study database, with the artifact store wired in.

We serve optuna-dashboard's own WSGI app the way its CLI does (a threaded wsgiref server), so
the storage goes through hpsearch's URL checks and the artifact folder is the same one
``hpsearch best --retrain`` uploads to; a busy port is one clear line, not a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from optuna_dashboard import wsgi

from hpsearch.errors import HpsearchError
from hpsearch.publish import artifact_store
from hpsearch.storage import mask, open_storage


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's signature
        pass


def serve(url: str, host: str, port: int, artifacts: Path, *, log_requests: bool = False,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. ``ready`` gets the address once the socket is listening."""
    storage = open_storage(url, create=False)
    app = wsgi(storage, artifact_store=artifact_store(artifacts))
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
