import sqlite3
from pathlib import Path

import pytest

from hpsearch.errors import StorageError
from pgcluster import PASSWORD
from hpsearch.storage import mask, open_storage


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
