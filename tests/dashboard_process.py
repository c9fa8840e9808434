"""A real `hpsearch dashboard` process for tests, read through optuna-dashboard's own HTTP API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from conftest import Work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def api(port: int, path: str) -> Any:
    return json.loads(get(f"http://127.0.0.1:{port}{path}"))


class Dashboard:
    def __init__(self, work: Work, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "hpsearch", "dashboard", "--port", str(self.port), *args],
                                     cwd=work.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=os.environ.copy())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[0]
            try:
                self.studies = api(self.port, "/api/studies")["study_summaries"]
                return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("dashboard did not answer within 60 s")

    def stop(self) -> str:
        self.proc.terminate()
        return self.proc.communicate(timeout=30)[0]
