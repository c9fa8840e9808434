import csv
import io
import json
import os
import re
import subprocess
import sys

import optuna
import pytest

from conftest import REPO, Finished, Work, copy_sqlite
from hpsearch.cli import app

FIXTURES = REPO / "tests" / "fixtures"


def test_help_in_a_real_subprocess() -> None:
    r = subprocess.run([sys.executable, "-m", "hpsearch", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for cmd in ("run", "best", "studies", "trials"):
        assert cmd in r.stdout


def test_run_help_names_every_contract_option(work: Work) -> None:
    out = work.cli("run", "--help").output
    for opt in ("--workers", "--n-trials", "--timeout", "--storage", "--seed", "--device", "--data-root",
                "--studies-dir", "--name", "--pruner"):
        assert opt in out


@pytest.mark.slow
def test_studies_and_trials_listings(store: Work, tiny_search: Finished) -> None:
    """The session's searched `tiny` (4 trials), and a second study holding a copy of it."""
    work = store
    work.adopt(tiny_search)
    optuna.copy_study(from_study_name="tiny", from_storage=work.url, to_storage=work.url, to_study_name="tiny-b")
    lines = work.cli("studies").output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("tiny ") and "complete=4" in lines[0] and re.search(r"best \d+\.\d\d % \(#\d\)", lines[0])
    assert lines[1].startswith("tiny-b ")
    rows = json.loads(work.cli("trials", "tiny", "--format", "json").stdout)
    assert [r["number"] for r in rows] == [0, 1, 2, 3] and all(r["state"] == "COMPLETE" for r in rows)
    table = list(csv.DictReader(io.StringIO(work.cli("trials", "tiny", "--format", "csv").stdout)))
    assert len(table) == 4 and {"number", "state", "value", "filters", "lr"} <= set(table[0])
    assert "filters" in work.cli("trials", "tiny").output
    r = work.cli("best", expect=1)
    assert "holds 2 studies (tiny, tiny-b); name one" in r.output
    assert "pg-S3cret-pw" not in r.output


def test_read_commands_on_an_empty_folder_do_not_create_a_database(work: Work) -> None:
    r = work.cli("studies", expect=1)
    assert "no study database at hpsearch.db" in r.output and not work.db.exists()
    r = work.cli("best", "tiny", expect=1)
    assert "no study database" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_unknown_study_name_in_best(work: Work, tiny_search: Finished) -> None:
    work.adopt(tiny_search)
    r = work.cli("best", "nope", expect=1)
    assert "no study 'nope' in sqlite:///hpsearch.db (it has: tiny)" in r.output


def test_debug_shows_the_traceback(work: Work) -> None:
    from hpsearch.errors import StudyModuleError

    with pytest.raises(StudyModuleError):
        work.runner.invoke(app_with_debug(), ["--debug", "run", "nope"], catch_exceptions=False)


def app_with_debug():  # noqa: ANN201
    from hpsearch.cli import app
    return app


def test_a_worker_crash_names_debug_and_debug_prints_the_workers_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor reports a worker's unexpected error as one line; the traceback it came with
    (from the worker process, where it happened) is what --debug shows."""
    import typer
    from typer.testing import CliRunner

    from hpsearch import cli
    from hpsearch.errors import TrialsFailing

    @cli.guarded
    def failing() -> None:
        raise TrialsFailing("worker 1: KeyError: 'x'", detail='Traceback (most recent call last):\n  File "w.py"\n')

    app = typer.Typer()
    app.command()(failing)
    monkeypatch.setitem(cli._state, "debug", False)  # an earlier --debug invocation in this process set it
    r = CliRunner().invoke(app, [])
    assert r.exit_code == 3 and "rerun with --debug for the worker's traceback" in r.output
    assert "Traceback" not in r.output
    monkeypatch.setitem(cli._state, "debug", True)
    r = CliRunner().invoke(app, [])
    assert 'File "w.py"' in r.output and isinstance(r.exception, TrialsFailing)


@pytest.mark.parametrize("args, shown", [
    (["best", "[/]"], "'[/]'"),
    (["best", "[red]secret"], "'[red]secret'"),  # rich read "[red]" as a colour and reported 'secret'
    (["trials", "x[/bold]"], "'x[/bold]'"),
    (["compare", "today", "--by", "lr[/]"], "lr[/]"),
    (["run", "today", "--studies-dir", "studs[/x]"], "studs[/x]"),
])
def test_user_input_in_a_message_prints_as_itself(work: Work, args: list[str], shown: str) -> None:
    """Messages carry study names, parameters and paths; rich markup in them crashed the command
    with a MarkupError traceback (issue 34, attack 3) or changed what was reported."""
    copy_sqlite(FIXTURES / "daa92c9" / "today.db", work.db)  # a study made by hpsearch (the previous main)
    r = work.runner.invoke(app, args)
    assert r.exit_code not in (0, None) and r.exception is None or isinstance(r.exception, SystemExit), r.output
    assert shown in r.output and "Traceback" not in r.output and "MarkupError" not in r.output, r.output


def test_a_study_module_that_exits_at_import_is_an_error_not_a_finished_run(work: Work) -> None:
    """`sys.exit(0)` in a study module made `run` exit 0 having run nothing (issue 34, attack 9)."""
    (work.path / "studies" / "exits.py").write_text("import sys\n\nsys.exit(0)\n")
    r = work.cli("run", "exits", expect=1)
    assert "exits.py: called sys.exit(0) while being imported" in r.output and "__main__" in r.output
    assert "Traceback" not in r.output and not work.db.exists()


@pytest.mark.parametrize("args, says", [
    (["run", "tiny", "--n-trials", str(10**23)], "error: --n-trials must be between 1 and 1,000,000,000"),
    (["dashboard", "--port", "70000"], "error: invalid value for '--port': Input should be less than or equal to 65535; "
                                       "see `hpsearch dashboard --help`"),
    (["storage-proxy", "--port", "-1"], "error: invalid value for '--port'"),
    (["run", "tiny", "--n-trials", "many"], "error: invalid value for '--n-trials' / '-n': Input should be a valid integer"),
    (["compare", "--by", "lr", "--at", "middle"], "error: invalid value for '--at': 'middle' is not one of 'best', "
                                                  "'final'; see `hpsearch compare --help`"),
    (["run", "tiny", "--workers", "two"], "error: --workers must be >= 1 or auto, got 'two'"),
    (["trials", "--nope"], "error: no such option: --nope"),
])
def test_bad_option_values_are_one_line_and_exit_2_whoever_checks_them(work: Work, args: list[str], says: str) -> None:
    """A budget of 10**23 was accepted; a port of 70000 ended in a bare OverflowError (issue 34, attack 10).
    The option parser's errors were three lines with pydantic's "Value error," and exit 2, hpsearch's
    own checks of an option one line and exit 1 (issue 35): now both are one line, exit 2."""
    r = work.runner.invoke(app, args, prog_name="hpsearch")
    assert r.exit_code == 2 and r.output.startswith(says) and r.output.count("\n") == 1, r.output
    assert "Traceback" not in r.output and "Value error" not in r.output
    assert not work.db.exists()


def test_a_mistyped_study_name_gets_a_guess_and_several_studies_name_the_command(work: Work) -> None:
    """No "did you mean" for a typo'd study, and `report` with several studies said
    "name one: `hpsearch best STUDY`" (issue 35)."""
    copy_sqlite(FIXTURES / "daa92c9" / "today.db", work.db)
    r = work.cli("trials", "todya", expect=1)
    assert "no study 'todya'" in r.output and "did you mean 'today'?" in r.output
    optuna.create_study(study_name="other", storage=work.url)
    r = work.cli("report", expect=1)
    assert "holds 2 studies (other, today); name one: `hpsearch report STUDY`" in r.output


@pytest.mark.parametrize("no_color", ["", "1"])
def test_no_color_means_no_escape_codes_at_all(work: Work, no_color: str) -> None:
    """NO_COLOR left bold codes on a terminal (issue 35). FORCE_COLOR makes rich style a pipe as it
    would a terminal; with NO_COLOR set the same error is plain text."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env.update({"FORCE_COLOR": "1", "TERM": "xterm-256color", **({"NO_COLOR": no_color} if no_color else {})})
    r = subprocess.run([sys.executable, "-m", "hpsearch", "best", "nope"], cwd=work.path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "no study database" in r.stderr, r.stderr
    assert ("\x1b[" in r.stderr) is (not no_color), repr(r.stderr)
