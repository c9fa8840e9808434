"""A peer's test suite: Optuna's own storage tests, run over hpsearch's storage (issue 20).

The tests come from the Optuna sdist of the installed version (``optuna.__version__``):
``tests/storages_tests/test_storages.py``, ``test_heartbeat.py`` and ``test_callbacks.py``,
with the sdist's ``tests/conftest.py`` and its pytest settings (``pyproject.toml``). The sdist
is not committed: ``pip download optuna==VERSION --no-binary :all: --no-deps`` fetches it once
into ``.cache/optuna-sdist/`` (ignored by git); without a network the test skips, saying so.

They run in pytest subprocesses with ``optuna_peer_plugin`` (next to this file), which makes
Optuna's ``StorageSupplier`` return ``hpsearch.store.storage.open_storage("sqlite:///FILE")`` for
its ``sqlite`` mode, and that wrapped in Optuna's ``_CachedStorage`` (what
``optuna.create_study`` does with it) for ``cached_sqlite``. Only those two modes run: the
other modes (in-memory, journal, Redis, gRPC) exercise Optuna's storages, not ours.
The deliberate differences are ``xfail(strict=True)`` there, each with its reason
(``optuna_peer_plugin.EXPECTED_FAILURES``); anything else that fails, an expected failure
that passes, or one that is no longer collected fails this test.

All of it runs (optuna 5.0.0: 152 tests). It is marked ``slow``: most of its time is the
heartbeat tests sleeping past their 2 s grace periods (about two minutes of sleep), the rest
~150 fresh SQLite schemas; ``SHARDS`` processes share the run so the sleeps overlap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import optuna
import optuna_peer_plugin
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "optuna-sdist"
TEST_FILES = ("test_storages.py", "test_heartbeat.py", "test_callbacks.py")
# What those tests need from the sdist's tests/ tree (optuna.testing is in the installed package).
SDIST_FILES = ("pyproject.toml", "tests/__init__.py", "tests/conftest.py", "tests/storages_tests/__init__.py",
               *(f"tests/storages_tests/{name}" for name in TEST_FILES))
SHARDS = 3  # processes; on 2 cores the heartbeat tests' sleeps overlap with the others' work
SHARD_TIMEOUT_S = 900


def _sdist(version: str) -> Path:
    sdist = CACHE / f"optuna-{version}.tar.gz"
    if sdist.exists():
        return sdist
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:  # then one rename: never a half file
        cmd = [sys.executable, "-m", "pip", "download", f"optuna=={version}", "--no-binary", ":all:",
               "--no-deps", "--disable-pip-version-check", "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"could not download the optuna {version} sdist (no network?): `pip download` "
                        "took over 300 s")
        got = list(Path(tmp).glob("optuna-*.tar.gz"))
        if proc.returncode != 0 or len(got) != 1:
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.startswith("ERROR")]
            why = lines[-1] if lines else f"pip exited {proc.returncode}, files {[p.name for p in got]}"
            pytest.skip(f"could not download the optuna {version} sdist (no network?): {why}")
        os.replace(got[0], sdist)
    return sdist


def _extract(sdist: Path, dest: Path, version: str) -> Path:
    prefix = f"optuna-{version}/"
    with tarfile.open(sdist) as tar:
        members = []
        for name in SDIST_FILES:
            member = tar.getmember(prefix + name)  # KeyError: the sdist's layout changed
            member.name = name
            members.append(member)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # Python < 3.11.4; the names are fixed above, no links or absolute paths
            tar.extractall(dest, members=members)
    return dest


def _run(root: Path, work: Path) -> tuple[dict, list[str], float]:
    """Run the peer tests in SHARDS processes at once; merged outcomes, each shard's output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *filter(None, [env.get("PYTHONPATH")])])
    started, procs = time.monotonic(), []
    for k in range(SHARDS):
        tmp = work / f"shard{k}"
        tmp.mkdir()
        shard_env = {**env, "TMPDIR": str(tmp), "HPSEARCH_PEER_SHARD": f"{k}/{SHARDS}",
                     "HPSEARCH_PEER_REPORT": str(work / f"shard{k}.json")}
        cmd = [sys.executable, "-m", "pytest", "-c", str(root / "pyproject.toml"), "--rootdir", str(root),
               "-p", "optuna_peer_plugin", "-p", "no:cacheprovider", "-q", "--color=no", "-rfEX", "--tb=short",
               *(f"tests/storages_tests/{name}" for name in TEST_FILES)]
        out = open(work / f"shard{k}.log", "w")
        procs.append((subprocess.Popen(cmd, cwd=root, env=shard_env, stdout=out, stderr=subprocess.STDOUT), out))
    for proc, out in procs:
        try:
            proc.wait(timeout=SHARD_TIMEOUT_S)
        finally:
            proc.kill()
            out.close()
    wall = time.monotonic() - started
    merged: dict = {"outcomes": {}, "opened": 0, "missing_expected": set(), "exitstatus": []}
    logs = []
    for k, (proc, _) in enumerate(procs):
        logs.append(f"--- shard {k}/{SHARDS} (exit {proc.returncode}) ---\n" + (work / f"shard{k}.log").read_text())
        report_path = work / f"shard{k}.json"
        if not report_path.exists():
            continue
        report = json.loads(report_path.read_text())
        merged["outcomes"].update(report["outcomes"])
        merged["opened"] += report["opened"]
        merged["missing_expected"].update(report["missing_expected"])
        merged["exitstatus"].append(report["exitstatus"])
    return merged, logs, wall


def test_optunas_storage_tests_pass_on_our_storage(tmp_path: Path) -> None:
    version = optuna.__version__
    root = _extract(_sdist(version), tmp_path / f"optuna-{version}", version)
    work = tmp_path / "run"
    work.mkdir()
    result, logs, wall = _run(root, work)
    tails = "\n".join(log[-6000:] for log in logs)

    outcomes: dict[str, str] = result["outcomes"]
    assert len(result["exitstatus"]) == SHARDS, f"a shard wrote no report:\n{tails}"
    assert not result["missing_expected"], (
        f"expected failures not collected from optuna {version}'s tests (renamed upstream? update "
        f"optuna_peer_plugin.EXPECTED_FAILURES): {sorted(result['missing_expected'])}")
    bad = {name: outcome for name, outcome in outcomes.items() if outcome not in ("passed", "xfailed")}
    assert not bad, f"Optuna's storage tests on hpsearch's storage: {bad}\n{tails}"
    xfailed = sorted(name for name, outcome in outcomes.items() if outcome == "xfailed")
    assert xfailed == sorted(optuna_peer_plugin.EXPECTED_FAILURES), xfailed
    assert result["exitstatus"] == [0] * SHARDS, tails
    for mode in optuna_peer_plugin.MODES:
        assert any(name.endswith(f"[{mode}]") for name in outcomes), f"no test ran in mode {mode}"
    assert result["opened"] > len(outcomes) // 2, "the storages did not come from hpsearch.store.storage.open_storage"
    passed = sum(outcome == "passed" for outcome in outcomes.values())
    print(f"optuna {version} storage tests on hpsearch.store.storage.open_storage: {passed} passed, "
          f"{len(xfailed)} xfailed (deliberate) in {wall:.0f} s over {SHARDS} processes")
