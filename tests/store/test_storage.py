import sqlite3
from pathlib import Path

import pytest

from hpsearch.errors import StorageError
from hpsearch.store.storage import lock_file, mask, open_storage, try_exclusive
from pgcluster import PASSWORD


def test_passwords_are_masked() -> None:
    assert mask("postgresql+psycopg://bob:s3cret@db:5432/hp") == "postgresql+psycopg://bob:***@db:5432/hp"
    assert "s3cret" not in mask("not a url bob:s3cret@db")


@pytest.mark.parametrize("url, match", [
    ("hpsearch.db", "bad storage URL"),
    ("mysql://u@h/db", "unsupported storage"),
    ("sqlite://", "in-memory SQLite cannot be shared"),
])
def test_bad_urls_are_one_clear_error(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match):
        open_storage(url, create=True)


def test_reading_a_missing_sqlite_file_does_not_create_it(tmp_path: Path) -> None:
    db = tmp_path / "nothing.db"
    with pytest.raises(StorageError, match="no study database at"):
        open_storage(f"sqlite:///{db}", create=False)
    assert not db.exists()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    open_storage(f"sqlite:///{db}", create=True)
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unreachable_postgres_is_one_line_with_the_password_masked() -> None:
    with pytest.raises(StorageError) as err:
        open_storage("postgresql+psycopg://bob:s3cret@127.0.0.1:1/hp", create=True)
    assert "cannot connect to postgresql+psycopg://bob:***@127.0.0.1:1/hp" in str(err.value)
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)


@pytest.mark.postgres
def test_wrong_postgres_credentials_are_one_masked_line(pg) -> None:  # noqa: ANN001
    url = pg.url(password="wrong-password")
    with pytest.raises(StorageError) as err:
        open_storage(url, create=True)
    msg = str(err.value)
    assert msg.startswith("cannot connect to postgresql+psycopg://postgres:***@127.0.0.1")
    assert "password authentication failed" in msg and "wrong-password" not in msg and "\n" not in msg


@pytest.mark.postgres
def test_postgres_run_with_wrong_credentials_writes_nothing(work, pg) -> None:  # noqa: ANN001
    good = pg.create_database()
    bad = good.replace(PASSWORD, "nope")
    r = work.cli("run", "tiny", "--storage", bad, expect=1)
    assert "password authentication failed" in r.output and "nope" not in r.output
    import optuna
    assert optuna.get_all_study_names(open_storage(good, create=True)) == []


@pytest.mark.postgres
def test_a_budget_lock_whose_session_dies_does_not_ask_twice(pg, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """A server restart while a worker holds the budget lock ends the lock's session with it.

    The ask made under the lock stands: one trial, not a second one asked by a retry of the
    whole decision while the first stays RUNNING with nobody to run it (it used to be failed as
    stale a grace period later: the occasional FAIL in the Postgres-restart recovery test).
    """
    import optuna
    import psycopg

    import hpsearch.store.budget
    from hpsearch.run.workers import next_trial

    url = pg.create_database()
    storage = open_storage(url, create=True)
    study = optuna.create_study(study_name="s", storage=storage)
    real, ended = hpsearch.store.budget.state_counts, []

    def counts_after_the_lock_holder_is_gone(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if ended:  # one restart; a retry of the whole decision would come back here
            return real(*args, **kwargs)
        with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres password={PASSWORD} dbname=postgres",
                             autocommit=True) as con:
            ended.extend(con.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                                     " AND granted").fetchall())
        assert ended == [(True,)]  # the budget lock's session, as a restart ends it
        return real(*args, **kwargs)

    monkeypatch.setattr(hpsearch.store.budget, "state_counts", counts_after_the_lock_holder_is_gone)
    trial = next_trial(study, storage, url, n_trials=5)
    monkeypatch.setattr(hpsearch.store.budget, "state_counts", real)
    assert isinstance(trial, optuna.Trial)
    assert [t.number for t in study.get_trials()] == [trial.number]
    assert next_trial(study, storage, url, n_trials=5).number == trial.number + 1  # the lock works again


@pytest.mark.postgres
def test_a_trial_read_whose_connection_dies_mid_transaction_is_retried(pg) -> None:  # noqa: ANN001
    """A server restart can end a connection between checkout and query.

    Optuna's trial read catches that first OperationalError as "too many IN variables", logs
    "Falling back to a slower alternative" and queries again on the same dead session: that
    raises ``PendingRollbackError``, which Optuna wraps as "An exception is raised during the
    commit". It is the same outage and must be retried like one (it failed a worker in the
    Postgres-restart recovery test).
    """
    import optuna
    import psycopg
    import sqlalchemy

    url = pg.create_database()
    storage = open_storage(url, create=True)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"x": 1.0})
    trial = study.ask()
    study.tell(trial, 1.0)
    ended: list[tuple[bool]] = []

    def end_own_connection(conn, cursor, statement, *_):  # noqa: ANN001, ANN002, ANN202
        # only the trial query of _get_trials, once: as a restart between checkout and query
        if ended or "FROM trials" not in statement or "trials.trial_id >" not in statement:
            return
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres password={PASSWORD} dbname=postgres",
                             autocommit=True) as admin:
            ended.extend(admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchall())

    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", end_own_connection)
    sid = storage.get_study_id_from_name("s")
    trials = storage._get_trials(sid, states=None, included_trial_ids={trial._trial_id}, trial_id_greater_than=0)
    assert ended == [(True,)]  # the connection really was ended under the read
    assert [t.number for t in trials] == [0]


def test_a_lock_belongs_to_the_database_file_however_the_url_spells_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A symlink to the file, a symlinked folder, a relative path and ``..``: one file, one lock.
    Keyed on the path as typed, a second look through a symlink was let in beside the first."""
    real = tmp_path / "data" / "hpsearch.db"
    real.parent.mkdir()
    open_storage(f"sqlite:///{real}", create=True)
    (tmp_path / "link.db").symlink_to(real)
    (tmp_path / "linked").symlink_to(real.parent, target_is_directory=True)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    spellings = [tmp_path / "link.db", tmp_path / "linked" / "hpsearch.db", Path("../data/hpsearch.db"),
                 tmp_path / "other" / ".." / "data" / "hpsearch.db"]
    assert {lock_file(s, ".lock") for s in spellings} == {lock_file(real, ".lock")}
    with try_exclusive(f"sqlite:///{real}", "hpsearch:retrain:s") as first:
        assert first
        for s in spellings:
            with try_exclusive(f"sqlite:///{s}", "hpsearch:retrain:s") as second:
                assert not second, f"{s} took a second lock on {real}"
        with try_exclusive(f"sqlite:///{real}", "hpsearch:retrain:other-study") as other:
            assert other  # another study's look is another lock
    with try_exclusive(f"sqlite:///{tmp_path / 'link.db'}", "hpsearch:retrain:s") as after:
        assert after  # released with the first
