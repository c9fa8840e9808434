"""Faults the database itself can have: a full disk, a damaged schema, a read-only file.

Only a lost connection is worth retrying; these are reported at once, with their cause.
The full and read-only disks are real: a small tmpfs mounted for the test (root only).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from conftest import Finished, Work, copy_sqlite
from hpsearch.store.storage import open_storage

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own, unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) for a small tmpfs")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> None:
    """Write zeros until the disk says ENOSPC."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def hpsearch(work: Work, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A real `hpsearch` process; a 10-minute database retry budget it must not spend."""
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], cwd=work.path, text=True, capture_output=True,
                          timeout=300, env={**os.environ, "HPSEARCH_STORAGE": url, "HPSEARCH_DB_RETRY_S": "600"})


def test_a_full_disk_stops_the_run_with_one_line_naming_the_database(work: Work, small_disk: Path,
                                                                     tiny_search: Finished) -> None:
    url = f"sqlite:///{small_disk / 'hpsearch.db'}"
    copy_sqlite(tiny_search.db, small_disk / "hpsearch.db")  # a searched study (4 trials) on the small disk
    fill(small_disk)
    r = hpsearch(work, url, "run", "tiny", "--n-trials", "6", "--pruner", "none")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "unreachable" not in out and "Traceback" not in out, out
    assert f"cannot write to the database {small_disk / 'hpsearch.db'}: its disk is full" in out
    (small_disk / "filler").unlink()
    r = hpsearch(work, url, "run", "tiny", "--n-trials", "6", "--pruner", "none")  # room again: it resumes
    assert r.returncode == 0, r.stdout + r.stderr
    states = [t.state.name for t in optuna.load_study(study_name="tiny", storage=url).trials]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states


def test_a_damaged_schema_is_surfaced_at_once_not_retried_as_an_outage(work: Work, tiny_search: Finished) -> None:
    work.adopt(tiny_search)
    with sqlite3.connect(work.db) as con:
        con.execute("ALTER TABLE trial_values DROP COLUMN value_type")  # a damaged or foreign schema
    r = hpsearch(work, work.url, "trials", "tiny")
    assert r.returncode == 1 and "no such column" in r.stderr and "value_type" in r.stderr, r.stderr
    assert "unreachable" not in r.stderr and "lost the database" not in r.stderr
    storage = open_storage(work.url, create=False)
    with pytest.raises((sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError)):
        optuna.load_study(study_name="tiny", storage=storage).get_trials()


def test_a_read_only_database_still_serves_the_read_commands(work: Work, small_disk: Path,
                                                            tiny_search: Finished) -> None:
    url = f"sqlite:///{small_disk / 'hpsearch.db'}"
    copy_sqlite(tiny_search.db, small_disk / "hpsearch.db")  # a searched study (4 trials), then made read-only
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for args in (["studies"], ["trials", "tiny"], ["best", "tiny"], ["report", "tiny", "--out", str(work.path / "r.html")]):
        r = hpsearch(work, url, *args)
        assert r.returncode == 0, (args, r.stdout + r.stderr)
    assert (work.path / "r.html").stat().st_size > 100_000
    r = hpsearch(work, url, "run", "tiny", "--n-trials", "6")
    assert r.returncode == 1 and "is read-only" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_failed_commit_is_named_by_its_cause_not_optunas_wrapper(tmp_path: Path) -> None:
    """Optuna turns any failed commit into "…typically happens due to invalid data in the commit…",
    which the retry line repeated while the database was only restarting (issue 34, attack 10)."""
    from hpsearch.store.storage import _first_line

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")
    try:
        try:
            with engine.connect():
                pass
        except sqlalchemy.exc.OperationalError as lost:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit. This "
                                                         "typically happens due to invalid data in the commit") from lost
    except optuna.exceptions.StorageInternalError as wrapped:
        line = _first_line(wrapped)
    assert "unable to open database file" in line and "invalid data" not in line, line
