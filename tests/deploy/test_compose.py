"""docker-compose.yml: valid, safe by default, and its services' exact commands work here.

No Docker engine runs on this machine, so the worker and dashboard commands are taken from the
compose file, their variables filled in as compose would, and run against a local Postgres.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import REPO, Work
from pgcluster import PASSWORD

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def substitute(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, and $$ for a literal $."""
    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg or ""
        raise KeyError(f"{name} is required: {arg}")
    value = re.sub(r"(?<!\$)\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)
    return value.replace("$$", "$")


def test_compose_file_is_safe_by_default() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "dashboard", "worker", "storage-proxy", "proxied-worker"}
    for optional in ("storage-proxy", "proxied-worker"):  # only with --profile proxy
        assert services[optional]["profiles"] == ["proxy"]
    assert "ports" not in services["storage-proxy"]  # the token travels in clear: never published
    for name in ("storage-proxy", "proxied-worker"):  # both carry the proxy's shared secret
        assert services[name]["environment"]["HPSEARCH_PROXY_TOKEN"] == "${HPSEARCH_PROXY_TOKEN:-}"
    assert COMPOSE["services"]["postgres"]["image"].count(".") >= 1  # a pinned release, not "15"
    assert services["dashboard"]["ports"] == ["127.0.0.1:${DASHBOARD_PORT:-8080}:8080"]
    assert "healthcheck" in services["postgres"] and "pgdata" in COMPOSE["volumes"]
    assert ":?" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]  # no default password
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert ".env" not in tracked and ".env.example" in tracked


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_docker_compose_config_validates(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", "Dockerfile", ".env.example"):
        shutil.copy(REPO / name, tmp_path / name)
    no_pg = {k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")}
    shutil.copy(REPO / ".env.example", tmp_path / ".env")  # as copied: no password yet, so refused
    r = subprocess.run(["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env=no_pg)
    assert r.returncode != 0 and "set POSTGRES_PASSWORD in .env to a password of your own" in r.stderr, r.stderr
    example = (tmp_path / ".env").read_text()
    (tmp_path / ".env").write_text(example.replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=9f2c4e7a1b\n"))
    r = subprocess.run(["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env=no_pg)
    assert r.returncode == 0, r.stderr
    resolved = yaml.safe_load(r.stdout)
    assert resolved["services"]["worker"]["command"][:2] == ["run", "digits"]
    assert resolved["services"]["storage-proxy"]["command"][0] == "storage-proxy"
    assert resolved["services"]["proxied-worker"]["environment"]["HPSEARCH_STORAGE"] == "grpc://storage-proxy:13000"
    (tmp_path / ".env").unlink()
    r = subprocess.run(["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env=no_pg)
    assert r.returncode != 0 and "POSTGRES_PASSWORD" in r.stderr


def _env(pg, db: str) -> dict[str, str]:  # noqa: ANN001
    return {"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": PASSWORD, "POSTGRES_DB": db,
            "HPSEARCH_STUDY": "tiny", "HPSEARCH_TRIALS": "2", "HPSEARCH_PROXY_TOKEN": "compose-test-token"}


def _local(text: str, pg) -> str:  # noqa: ANN001
    return text.replace("@postgres:5432/", f"@127.0.0.1:{pg.port}/")


@pytest.mark.slow
@pytest.mark.postgres
def test_worker_and_dashboard_commands_run_against_postgres(work: Work, pg) -> None:  # noqa: ANN001
    db = pg.create_database().rsplit("/", 1)[1]
    env = _env(pg, db)
    worker = COMPOSE["services"]["worker"]
    command = [substitute(c, env) for c in worker["command"]]
    storage = _local(substitute(worker["environment"]["HPSEARCH_STORAGE"], env), pg)
    r = subprocess.run(["hpsearch", *command], cwd=work.path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "HPSEARCH_STORAGE": storage})
    assert r.returncode == 0, r.stdout + r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert len(optuna.load_study(study_name="tiny", storage=storage).get_trials()) == 2

    dash = COMPOSE["services"]["dashboard"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [substitute(c, env) for c in dash["command"]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    dash_env = {k: _local(substitute(v, env), pg) for k, v in dash["environment"].items()}
    dash_env["HPSEARCH_ARTIFACTS"] = str(work.path / "artifacts")  # the volume's mount point, here
    assert set(dash["environment"]) == set(worker["environment"])  # same database, same artifact store
    proc = subprocess.Popen(["hpsearch", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **dash_env})
    try:
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as resp:
                    body = json.loads(resp.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, "dashboard did not answer"
        assert [s["study_name"] for s in body["study_summaries"]] == ["tiny"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.postgres
def test_proxy_and_proxied_worker_commands_run_against_postgres(work: Work, pg) -> None:  # noqa: ANN001
    """The storage-proxy service's exact command on a local Postgres, and the proxied worker's
    command pointed at it through HPSEARCH_PROXY_URL, as `docker compose --profile proxy` runs them."""
    pytest.importorskip("grpc", reason="grpcio is not installed: pip install 'hpsearch[grpc]'")
    db = pg.create_database().rsplit("/", 1)[1]
    env = _env(pg, db)
    proxy = COMPOSE["services"]["storage-proxy"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [substitute(c, env) for c in proxy["command"]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    storage = _local(substitute(proxy["environment"]["HPSEARCH_STORAGE"], env), pg)
    token = substitute(proxy["environment"]["HPSEARCH_PROXY_TOKEN"], env)
    assert token == "compose-test-token"
    proc = subprocess.Popen(["hpsearch", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HPSEARCH_STORAGE": storage, "HPSEARCH_PROXY_TOKEN": token})
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # the proxy prints its address once it listens
        assert f"grpc://127.0.0.1:{port}" in ready and PASSWORD not in ready, ready
        worker = COMPOSE["services"]["proxied-worker"]
        wenv = {**env, "HPSEARCH_PROXY_URL": f"grpc://127.0.0.1:{port}"}
        r = subprocess.run(["hpsearch", *[substitute(c, wenv) for c in worker["command"]]], cwd=work.path,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, **{k: substitute(v, wenv) for k, v in worker["environment"].items()},
                                "HPSEARCH_ARTIFACTS": str(work.path / "artifacts")})
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"storage grpc://127.0.0.1:{port}" in r.stdout
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "storage proxy stopped" in out, out
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]


def test_the_image_installs_pinned_wheels() -> None:
    """Images and wheels were unpinned (issue 34, attack 10): every pip install in the Dockerfile
    takes deploy/constraints.txt, which pins each runtime dependency (and its own) exactly."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    dockerfile = (REPO / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if line.startswith("RUN pip install")]
    assert installs and all(" -c constraints.txt " in line for line in installs), installs
    pinned = {}
    for line in (REPO / "deploy" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["grpc"]]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0]).lower() for d in wanted}
    assert names <= set(pinned), names - set(pinned)
