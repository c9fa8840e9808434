"""`hpsearch storage-proxy` and workers on `--storage grpc://HOST:PORT`, with real processes.

The proxy is a real `hpsearch storage-proxy` subprocess on a real SQLite file or a throwaway
Postgres database; runs are real `hpsearch run` processes. Tests wait on what the proxy prints
and what the database shows, never on sleeps, and read the database directly (not through the
proxy) to judge the outcome.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import Work
from processes import heartbeats, start_run, wait_running

pytest.importorskip("grpc", reason="grpcio is not installed: pip install 'hpsearch[grpc]'")

from hpsearch.errors import StorageError  # noqa: E402
from hpsearch.store.proxy_client import parse  # noqa: E402

SECRET = "s3cret-proxy-token"


@pytest.fixture(autouse=True)
def _shared_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every proxy here requires the token; every client (in-process or spawned) carries it."""
    monkeypatch.setenv("HPSEARCH_PROXY_TOKEN", SECRET)


@contextmanager
def proxy(url: str, grace: int = 20, *extra: str) -> Iterator[str]:
    """`hpsearch storage-proxy` on ``url`` and any free port: yields its grpc:// URL. On exit it
    gets SIGTERM and must stop cleanly (exit 0, "stopped", no traceback)."""
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch", "storage-proxy", "--storage", url, "--port", "0",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HPSEARCH_GRACE_S": str(grace)})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the proxy listens (or exits: an empty line)
    found = re.search(r"(grpcs?)://127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        raise AssertionError(f"proxy did not start: {line}{proc.communicate()[0]}")
    try:
        yield f"{found.group(1)}://127.0.0.1:{found.group(2)}"
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0 and "storage proxy stopped" in out and "Traceback" not in out, out


def finished(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def test_the_private_optuna_parts_the_proxy_uses_are_there() -> None:
    """Optuna's proxy servicer (to share a port and stop on a signal) and Study's per-ask trial
    cache (reset when a worker attaches to a trial the proxy created): a rename fails here."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    assert callable(api_pb2_grpc.add_StorageServiceServicer_to_server) and OptunaStorageProxyService
    study = optuna.create_study()
    assert hasattr(study._thread_local, "cached_all_trials")


@pytest.mark.parametrize("url", ["grpc://127.0.0.1", "grpc://:13000", "grpc://host:port", "grpc://h:99999",
                                 "grpc://h:1/db", "grpc://u:pw@h:1"])
def test_bad_proxy_urls_are_one_clear_error(url: str) -> None:
    with pytest.raises(StorageError, match="bad storage proxy URL .*use grpc://HOST:PORT"):
        parse(url)


def test_bad_input_to_the_proxy_is_one_line(work: Work) -> None:
    r = work.cli("storage-proxy", "--storage", "mysql://u@h/db", expect=2)
    assert "unsupported storage" in r.output and "Traceback" not in r.output
    r = work.cli("storage-proxy", "--storage", "grpc://127.0.0.1:13000", expect=2)
    assert "serves a database, not another proxy" in r.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = work.cli("storage-proxy", "--storage", work.url, "--port", str(port), expect=1)
    assert r.output.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in r.output, r.output


def test_no_proxy_listening_is_one_clear_line(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_PROXY_WAIT_S", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    r = work.cli("run", "tiny", "--storage", f"grpc://127.0.0.1:{port}", expect=1)
    assert r.output.startswith("error: no storage proxy answers at") and r.output.count("\n") == 1, r.output
    assert "waited 1s" in r.output
    r = work.cli("studies", "--storage", "grpc://127.0.0.1", expect=2)
    assert "bad storage proxy URL" in r.output


@pytest.mark.slow
@pytest.mark.postgres
def test_a_run_through_the_proxy_beside_a_direct_run_keeps_the_exact_budget(work: Work, pg) -> None:  # noqa: ANN001
    """Two runs at once on one Postgres study, one through the proxy and one straight on the
    database: the proxy takes the same advisory lock for its workers, so exactly N finish."""
    work.url = pg.create_database()
    with proxy(work.url) as url:
        direct = start_run(work, "tiny", "--workers", "1", "--n-trials", "4", "--pruner", "none")
        via = work.cli("run", "tiny", "--workers", "2", "--n-trials", "4", "--pruner", "none", "--storage", url)
        out = direct.communicate(timeout=300)[0]
        assert direct.returncode == 0, out
        listed = work.cli("trials", "tiny", "--storage", url, "--format", "csv").output  # reads work too
    trials = finished(work.url, "tiny")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4, (via.output, out)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len(listed.strip().splitlines()) == 1 + len(trials)
    assert heartbeats(work), "the proxy records the heartbeats of its workers' trials"
    assert "pg-S3cret-pw" not in via.output + out


@pytest.mark.slow
def test_a_worker_killed_behind_the_proxy_is_replaced_and_its_trial_rerun(work: Work) -> None:
    """kill -9 of a worker mid-trial: the proxy fails its trial once the heartbeats stop (the
    proxy's grace period) and re-queues its parameters; the run still ends with N complete."""
    with proxy(work.url, grace=4) as url:
        proc = start_run(work, "slow", "--workers", "1", "--n-trials", "1", "--pruner", "none", "--storage", url)
        victim = wait_running(proc, work)[0]
        os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    said = " ".join(out.split())  # the live view wraps long lines at the terminal's width
    assert "was killed (signal 9): its trials are retried once their heartbeat is stale" in said, out
    trials = finished(work.url, "slow")
    by_number = {t.number: t for t in trials}
    assert by_number[victim.number].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE and retried[0].params == victim.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.slow
def test_a_grid_through_the_proxy_hands_out_every_cell_once_and_reads_work(work: Work) -> None:
    """Grid cells are handed out under the budget lock, in the proxy; the read commands work
    through it, and `best --retrain` (whose one-look lock needs the database) is refused. A
    second proxy on the same port is refused too (gRPC binds with SO_REUSEPORT by default: two
    proxies would share a port without a word)."""
    with proxy(work.url) as url:
        r = work.cli("storage-proxy", "--storage", work.url, "--port", url.rsplit(":", 1)[1], expect=1)
        assert "cannot listen on" in r.output
        work.cli("run", "grid6", "--workers", "2", "--storage", url)
        assert "grid6" in work.cli("studies", "--storage", url).output
        assert "best trial" in work.cli("best", "--storage", url).output
        r = work.cli("best", "--retrain", "--storage", url, expect=1)
    assert "take a lock in the database itself" in r.output and r.output.count("\n") == 1, r.output
    assert not Path("runs").exists()
    trials = finished(work.url, "grid6")
    cells = [tuple(sorted(t.params.items())) for t in trials if t.state == TrialState.COMPLETE]
    assert len(cells) == len(set(cells)) == 6 and len(trials) == 6


def test_missing_grpcio_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpsearch.store.proxy_client import connect

    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed
    with pytest.raises(StorageError, match=r"needs grpcio, which is not installed: pip install 'hpsearch\[grpc\]'"):
        connect("grpc://127.0.0.1:13000")


def test_a_plain_optuna_proxy_is_refused_with_the_reason(tmp_path: Path) -> None:
    """Optuna's own proxy serves the storage but not hpsearch's budget service: joining it
    would lose the exact budget and heartbeats, so the client refuses it in one line."""
    from optuna.storages._grpc.server import make_server

    from hpsearch.store.proxy_client import connect

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'plain.db'}"), "127.0.0.1", port)
    server.start()
    try:
        with pytest.raises(StorageError, match="is a plain Optuna storage proxy, which cannot keep"):
            connect(f"grpc://127.0.0.1:{port}")
    finally:
        server.stop(0).wait()


def test_a_proxy_without_a_shared_secret_refuses_to_start(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any process that reached the port could reset the look counter or delete studies (issue 34,
    attack 7): a proxy now needs a token, or an explicit --no-token."""
    monkeypatch.delenv("HPSEARCH_PROXY_TOKEN")
    r = work.cli("storage-proxy", "--storage", work.url, "--port", "0", expect=1)
    assert "the storage proxy needs a shared secret: set HPSEARCH_PROXY_TOKEN (or --token-file FILE)" in r.output
    assert "--no-token" in r.output and not work.db.exists()


@pytest.mark.slow
def test_calls_without_the_token_are_refused_and_change_nothing(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    optuna.create_study(study_name="kept", storage=work.url).set_user_attr("hpsearch:test_looks", 2)
    token_file = work.path / "token"
    token_file.write_text(SECRET + "\n")  # as a mounted Secret: the newline is not part of it
    monkeypatch.delenv("HPSEARCH_PROXY_TOKEN")
    with proxy(work.url, 20, "--token-file", str(token_file)) as url:
        host, port = parse(url)
        with pytest.warns(optuna.exceptions.ExperimentalWarning):
            bare = optuna.storages.GrpcStorageProxy(host=host, port=port)  # a plain client: no token
        import grpc

        for attack in (lambda: bare.delete_study(bare.get_study_id_from_name("kept")),
                       lambda: bare.set_study_user_attr(1, "hpsearch:test_looks", 0)):
            with pytest.raises(grpc.RpcError) as refused:
                attack()
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        monkeypatch.setenv("HPSEARCH_PROXY_TOKEN", "wrong")
        r = work.cli("studies", "--storage", url, expect=1)
        assert "refused this process: HPSEARCH_PROXY_TOKEN (or HPSEARCH_PROXY_TOKEN_FILE) is missing here or is " \
               "not the proxy's" in r.output and "Traceback" not in r.output
        monkeypatch.setenv("HPSEARCH_PROXY_TOKEN_FILE", str(token_file))  # the right one: it reads
        monkeypatch.delenv("HPSEARCH_PROXY_TOKEN")
        assert work.cli("studies", "--storage", url).output.startswith("kept")
    kept = optuna.load_study(study_name="kept", storage=work.url)
    assert kept.user_attrs["hpsearch:test_looks"] == 2


def test_a_grpc_failure_is_named_in_one_line() -> None:
    """The retry line read `(<_InactiveRpcError of RPC that terminated with:)` (issue 34, attack 10)."""
    import grpc

    from hpsearch.store.storage import _first_line

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary("/x.Y/Z")(b"", timeout=10)
    line = _first_line(failed.value)
    assert line.startswith("gRPC UNAVAILABLE: ") and "\n" not in line and "_InactiveRpcError" not in line, line


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_a_proxy_serving_tls_is_reached_through_grpcs_only(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS is optional and off by default (issue 34, item 7): with --tls-cert/--tls-key the token and
    the study travel encrypted, clients use grpcs:// and trust the CA named by HPSEARCH_PROXY_TLS_CA."""
    cert, key = work.path / "proxy.pem", work.path / "proxy.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    optuna.create_study(study_name="kept", storage=work.url)
    with proxy(work.url, 20, "--tls-cert", str(cert), "--tls-key", str(key)) as url:
        assert url.startswith("grpcs://127.0.0.1:")
        monkeypatch.setenv("HPSEARCH_PROXY_TLS_CA", str(cert))
        assert work.cli("studies", "--storage", url).output.startswith("kept")
        monkeypatch.setenv("HPSEARCH_PROXY_WAIT_S", "2")
        plain = url.replace("grpcs://", "grpc://")
        r = work.cli("studies", "--storage", plain, expect=1)  # a plain client never gets an answer
        assert "no storage proxy answers at " + plain in r.output and "Traceback" not in r.output
    r = work.cli("storage-proxy", "--storage", work.url, "--tls-cert", str(cert), expect=1)
    assert "TLS needs both --tls-cert and --tls-key" in r.output
