"""Study names and output files: nothing hpsearch writes lands outside the folder it was meant for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import optuna
import pytest

from conftest import Finished, Work
from hpsearch.errors import UnsafePath
from hpsearch.store.paths import PLAIN_NAME, check_name, safe_name, write_atomically

BAD_NAMES = ["../../escaped", "a/b", "..", ".hidden", "-rf", "a\\b", "tab\there", "", "x" * 129]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused_and_map_to_one_plain_component(name: str) -> None:
    with pytest.raises(UnsafePath, match="is not allowed: use up to 128 letters"):
        check_name(name)
    safe = safe_name(name)
    assert PLAIN_NAME.fullmatch(safe) and Path(safe).name == safe and safe not in (".", "..")
    assert safe != safe_name(name + "x")  # two names never share a path


@pytest.mark.parametrize("name", ["tiny", "tiny-b", "mnist_v2.1", "_x", "A9"])
def test_plain_names_are_kept(name: str) -> None:
    assert check_name(name) == name and safe_name(name) == name


def test_write_atomically_replaces_a_file_through_the_same_folder(tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    target.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    assert write_atomically(link, "new") == target
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.html", "r.html"]  # no temp file left


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _device(p: Path) -> None:
    try:
        os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers, in tmp
    except PermissionError:
        pytest.skip("creating a device node needs root")


@pytest.mark.parametrize("make, kind", [(Path.mkdir, "a directory"), (_fifo, "a FIFO"),
                                        (_device, "a character device")])
def test_report_out_refuses_an_existing_non_regular_target(work: Work, tiny_search: Finished, make,  # noqa: ANN001
                                                           kind: str) -> None:
    work.adopt(tiny_search)
    target = work.path / "target"
    make(target)
    before = target.lstat()
    r = work.cli("report", "tiny", "--out", str(target), expect=1)
    assert r.output.strip() == (f"error: refusing to replace {target}: it exists and is {kind}, not a regular "
                                "file; pass --out FILE.html")
    after = target.lstat()
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert not list(work.path.glob(".target*")) and not list(work.path.glob("target.*"))


@pytest.mark.slow
def test_a_stored_unsafe_name_never_picks_where_files_go(store: Work, monkeypatch: pytest.MonkeyPatch,
                                                        tiny_search: Finished) -> None:
    """Another tool stored '../../escaped' in the shared database: report and retrain stay inside."""
    work = store
    work.adopt(tiny_search)
    optuna.copy_study(from_study_name="tiny", from_storage=work.url, to_storage=work.url,
                      to_study_name="../../escaped")
    inner = work.path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    r = work.cli("report", "../../escaped", "--storage", work.url)
    assert not (work.path / "escaped-report.html").exists()
    assert [p.name for p in inner.iterdir()] == [f"{safe_name('../../escaped')}-report.html"], r.output
    work.cli("best", "../../escaped", "--retrain", "--seeds", "1", "--storage", work.url)
    assert not (work.path / "escaped").exists()
    assert [p.name for p in (inner / "runs").iterdir()] == [safe_name("../../escaped")]
