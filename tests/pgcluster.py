"""A throwaway PostgreSQL cluster on a free loopback port, for tests that need a real server.

initdb/pg_ctl refuse to run as root, so as root they run as the ``postgres`` user (runuser).
The cluster uses password authentication, so URLs in tests carry a real password, which
lets tests check that it never shows up in output.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "pg-S3cret-pw"


def bindir() -> Path | None:
    for pattern in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(pattern, "initdb").exists():
            return Path(pattern)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgCluster:
    bin: Path
    data: Path
    port: int
    as_user: list[str]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    @classmethod
    def start(cls) -> PgCluster:
        b = bindir()
        if b is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        root = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        cluster = cls(b, root / "data", _free_port(), as_user)
        cluster._run(str(b / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "scram-sha-256",
                     f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        opts = f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        cluster._run(str(b / "pg_ctl"), "-D", str(cluster.data), "-o", opts, "-l", str(root / "log"), "-w", "start")
        return cluster

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres password={PASSWORD} dbname=postgres",
                             autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)

    def restart(self) -> None:
        opts = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.data.parent / "log"),
                  "-w", "start")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data.parent, ignore_errors=True)
