"""Workers are forks of one fork server that imported torch once (run/_forkserver.py): each still
starts with the supervisor's environment and folder of the moment it was started."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from hpsearch.run.workers import WorkerJob, WorkerPool, start_server

MODULE = """\
import os, pathlib
pathlib.Path(os.environ["HPSEARCH_TEST_OUT"]).write_text(os.environ.get("HPSEARCH_TEST_MARK", "missing")
                                                        + " in " + os.getcwd())
"""


@pytest.mark.skipif("forkserver" not in mp.get_all_start_methods(), reason="no fork server on this platform")
def test_a_worker_gets_the_environment_and_folder_of_its_start_not_the_servers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start_server()  # as a run does first; a notebook's second run finds it already there
    later = tmp_path / "later"
    later.mkdir()
    monkeypatch.chdir(later)
    monkeypatch.setenv("HPSEARCH_TEST_MARK", "set after the server started")
    monkeypatch.setenv("HPSEARCH_TEST_OUT", str(tmp_path / "seen.txt"))
    (tmp_path / "mark.py").write_text(MODULE)
    job = WorkerJob(index=0, study_path=str(tmp_path / "mark.py"), study_name="mark",
                    storage_url=f"sqlite:///{tmp_path / 'none.db'}", n_trials=1, deadline=None, device="cpu",
                    threads=1, data_root=str(tmp_path), sampler_seed=0, pruner="none")
    pool = WorkerPool()
    pool.start(job)
    pool.procs[0].join(120)
    event = pool.events.get(timeout=10)
    assert event[0] == "error"  # the module declares no study: the worker stops there, after importing it
    assert (tmp_path / "seen.txt").read_text() == f"set after the server started in {later}"
    assert pool.procs[0].exitcode not in (None, 0)
