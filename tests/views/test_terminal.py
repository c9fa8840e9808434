"""What a user reads in a terminal: every listing fits its width, no cell is cut to ``…``,
progress says where a retrain or a run stands, and the hints paste into a shell."""

import io
import json
import re
import shlex
import subprocess
import sys

import optuna
import pytest
from rich.console import Console

from conftest import Finished, Work
from hpsearch.results.retrain import Tick
from hpsearch.run.supervisor import RunResult
from hpsearch.store.records import study_get
from hpsearch.store.rows import trial_rows
from hpsearch.views import terminal
from hpsearch.views.listing import select
from hpsearch.views.progress import RetrainView, RunState, RunView, tick_line

optuna.logging.set_verbosity(optuna.logging.WARNING)


def console(width: int, terminal: bool = False) -> Console:
    return Console(width=width, file=io.StringIO(), force_terminal=terminal, color_system=None, record=True)


def lines_of(c: Console) -> list[str]:
    return c.export_text().splitlines()


def fits(lines: list[str], width: int) -> None:
    assert lines, "nothing printed"
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, f"{len(too_long)} lines wider than {width}: {too_long[:2]}"
    cut = [cell for line in lines for cell in re.split(r"\s{2,}", line.strip()) if cell.endswith("…")
           and not line.startswith("+")]
    assert not cut, f"cells cut short: {cut}"


def wide_study(tmp_path) -> tuple[optuna.Study, optuna.storages.BaseStorage]:  # noqa: ANN001
    """Sixteen parameters with long names and values, the way a real search space reads."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'wide.db'}")
    # seeded: an unseeded sampler drew the same optimizer for all six trials now and then (1 in 32)
    study = optuna.create_study(study_name="a-rather-long-study-name", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=7))
    study.set_metric_names(["val_top1"])

    def objective(t: optuna.Trial) -> float:
        for i in range(12):
            t.suggest_float(f"parameter_number_{i}", 1e-6, 1.0, log=True)
        t.suggest_categorical("optimizer", ["sgd-with-nesterov-momentum", "adamw"])
        t.suggest_int("width", 8, 512)
        t.set_user_attr("n_params", t.params["width"] * 1000)
        t.set_user_attr("epochs", 10)
        return t.params["width"] / 512

    study.optimize(objective, n_trials=6)
    return study, storage


@pytest.mark.parametrize("width", [80, 120, 48, 30])
def test_trials_table_fits_the_terminal(tmp_path, width: int) -> None:  # noqa: ANN001
    study, storage = wide_study(tmp_path)
    listing = select(trial_rows(study, storage), ["val_top1"], ["maximize"])
    c = console(width)
    terminal.trials(c, listing, "table")
    lines = lines_of(c)
    fits(lines, width)
    text = "\n".join(lines)
    assert "val_top1" in text and "parameter_number_0" in text
    if width >= 80:  # a table: the fixed columns, then parameters in search-space order while they fit
        assert re.search(r"#\s+state\s+val_top1\s+ep\s+sec\s+params\s+parameter_number_0", lines[0]), lines[0]
        assert "parameters not shown: parameter_number_" in lines[-1]
    else:  # too narrow for the fixed columns: one block per trial, every parameter included
        assert sum(line.startswith("#") for line in lines) == 6 and text.count("width ") == 6


def test_top_sort_columns_and_state_choose_the_rows(tmp_path) -> None:  # noqa: ANN001
    study, storage = wide_study(tmp_path)
    rows = trial_rows(study, storage)
    values = sorted((r["value"] for r in rows), reverse=True)
    top = select(rows, ["val_top1"], ["maximize"], top=3)
    assert [r["value"] for r in top.rows] == values[:3]  # the best three, best first (maximize)
    by_size = select(rows, ["val_top1"], ["maximize"], sort="params")
    sizes = [r["n_params"] for r in by_size.rows]
    assert sizes == sorted(sizes)
    assert [r["n_params"] for r in select(rows, ["val_top1"], ["maximize"], sort="params", reverse=True).rows] \
        == sorted(sizes, reverse=True)
    by_param = select(rows, ["val_top1"], ["maximize"], sort="optimizer", top=2)
    optimizers = sorted(r["params"]["optimizer"] for r in rows)
    assert [r["params"]["optimizer"] for r in by_param.rows] == optimizers[:2]  # in the parameter's order
    assert optimizers[0] == "adamw" != optimizers[-1], "the seed must draw both optimizers for the sort to show"
    chosen = select(rows, ["val_top1"], ["maximize"], columns="number,WIDTH,val_top1")
    assert chosen.columns == ["number", "width", "val_top1"]
    c = console(80)
    terminal.trials(c, chosen, "table")
    assert lines_of(c)[0].split() == ["#", "width", "val_top1"]
    assert select(rows, ["val_top1"], ["maximize"], states="pruned,fail").rows == []


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"sort": "nope"}, "--sort: no column 'nope'; choose from: number, state, val_top1"),
    ({"columns": "number,,lr"}, "--columns: no column 'lr'"),
    ({"states": "done"}, "--state: no state 'done'; choose from: running, complete, pruned, fail, waiting"),
    ({"top": 0}, "--top 0: give a number of trials, 1 or more"),
])
def test_bad_listing_options_say_what_exists(tmp_path, kwargs: dict, says: str) -> None:  # noqa: ANN001
    from hpsearch.errors import HpsearchError

    study, storage = wide_study(tmp_path)
    with pytest.raises(HpsearchError, match=re.escape(says)):
        select(trial_rows(study, storage), ["val_top1"], ["maximize"], **kwargs)


@pytest.mark.slow
def test_trials_top_and_sort_from_the_command_line(work: Work, tiny_search: Finished) -> None:
    work.adopt(tiny_search)
    top = json.loads(work.cli("trials", "tiny", "--top", "3", "--format", "json").stdout)
    every = json.loads(work.cli("trials", "tiny", "--format", "json").stdout)
    assert len(top) == 3 and [r["number"] for r in top] == [r["number"] for r in
                                                           sorted(every, key=lambda r: -r["value"])[:3]]
    table = work.cli("trials", "tiny", "--top", "3").stdout.splitlines()
    assert len([line for line in table if re.match(r"\s*\d+\s+complete", line)]) == 3
    by_params = json.loads(work.cli("trials", "tiny", "--sort", "params", "--format", "json").stdout)
    assert [r["n_params"] for r in by_params] == sorted(r["n_params"] for r in every)
    r = work.cli("trials", "tiny", "--sort", "nope", expect=2)
    assert "no column 'nope'" in r.output and "Traceback" not in r.output
    lines = work.cli("studies").stdout.splitlines()
    assert "val_top1 ↑" in lines[0] and "not retrained" in lines[0]
    assert all(len(line) <= 80 for line in lines)


@pytest.mark.slow
def test_studies_names_the_retrain_state(work: Work, tiny_retrained: Finished) -> None:
    work.adopt(tiny_retrained)
    rec = study_get(optuna.load_study(study_name="tiny", storage=work.url), "hpsearch:retrain")
    text = " ".join(work.cli("studies").stdout.split())
    top1 = rec["test"]["top1"]  # an accuracy reads as a percentage on every screen
    assert f"retrained #{rec['trial']}: test top1 {100 * top1['mean']:.2f} ± {100 * top1['std']:.2f} %" in text
    best = optuna.load_study(study_name="tiny", storage=work.url).best_value
    assert "(1 look)" in text and f"best {100 * best:.2f} %" in text


def test_hints_are_shell_quoted_and_follow_the_retrain_state() -> None:
    base = dict(study_name="my study", n_trials=4, started=4, states={"COMPLETE": 4}, best_number=2,
                best_value=0.9, metric="val_top1")
    texts = {}
    for retrained in (None, 2, 1):
        c = console(80)
        terminal.run_summary(c, RunResult(**base, retrained_trial=retrained))
        texts[retrained] = c.export_text()
    assert "next: hpsearch best 'my study' --retrain" in texts[None]
    assert shlex.split("hpsearch best 'my study' --retrain")[2] == "my study"
    assert "--retrain" not in texts[2] and "retrained already: hpsearch best 'my study'" in texts[2]
    assert "retrain record is for trial 1" in texts[1] and "--retrain --force" in texts[1]


def test_run_view_fits_80_columns_and_shows_rate_and_eta() -> None:
    state = RunState("a-rather-long-study-name-for-a-grid", "val_top1", 40, 20, workers=4)
    c = console(80, terminal=True)
    view = RunView(state, c)
    starting = "\n".join(view._render().renderables[0].plain.splitlines())
    assert "starting 4 worker(s)" in starting
    state.trial_started, state.finished_at_start, state.finished, state.best, state.best_number = True, 0, 10, 0.98, 3
    state.t0 -= 300  # five minutes in: 2 trials/min, 30 to go
    state.timeout = 600.0
    for n in range(4):
        state.running[n + 11] = __import__("hpsearch.views.progress", fromlist=["Running"]).Running(n, 7, 0.97)
    c.print(view._render())
    lines = lines_of(c)
    fits(lines, 80)
    text = " ".join(lines)
    assert "2.0 trials/min" in text and "eta 5m00s" in text  # the 10-minute timeout comes before the budget's 15


def test_finished_trial_lines_when_piped_fit_the_width() -> None:
    state = RunState("digits", "val_top1", 20, 20, finished=3, best=0.9812, best_number=2, finished_at_start=0)
    state.t0 -= 120
    for width, n_lines in ((120, 1), (80, 2), (50, 2)):  # 3 finished in 2 minutes: 1.5/min, 17 to go
        c = console(width)
        RunView(state, c).trial_ended(17, "COMPLETE", 0.97654321)
        lines = lines_of(c)
        fits(lines, width)
        assert len(lines) == n_lines and lines[0].startswith("[3/20] trial 17 complete val_top1=97.65 %")
        assert "best 98.12 % (#2)" in " ".join(lines) and lines[-1].endswith("1.5/min · eta 11m20s")


def test_retrain_progress_lines_when_piped() -> None:
    c = console(80)
    with RetrainView(c) as view:
        view.message("loaded digits: 1078 train / 269 val images")
        view.tick(Tick("trial 3", 2, 5, 7, 20, "val_top1", 0.99123, done=27, total=100, elapsed=27.0))
    lines = lines_of(c)
    assert lines[1].startswith("seed 2/5 epoch 7/20 val_top1 99.12 %") and "eta 1m13s" in lines[1]
    assert tick_line(Tick("refit trial 3", 1, 2, 1, 3, "train_loss", None, 1, 6, 1.0)).startswith(
        "seed 1/2 epoch 1/3 train_loss —")


@pytest.mark.slow
def test_retrain_reports_every_epoch(work: Work, tiny_search: Finished) -> None:
    work.adopt(tiny_search)
    out = work.cli("best", "--retrain", "--seeds", "2", "--epochs", "2").stdout
    ticks = re.findall(r"^seed (\d)/2 epoch (\d)/2 val_top1 [0-9.]+ % .*eta", out, flags=re.M)
    assert ticks == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]


@pytest.mark.parametrize("command", ["run", "best", "trials", "studies", "report", "compare", "dashboard"])
def test_help_fits_80_columns(command: str) -> None:
    r = subprocess.run([sys.executable, "-m", "hpsearch", command, "--help"], capture_output=True, text=True,
                       timeout=120, env={**__import__("os").environ, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and not any("…" in line for line in lines)
    assert "--help" in r.stdout


def test_a_narrowing_terminal_leaves_no_stale_status_line() -> None:
    """A reflowing terminal (tmux) turns the last status line of 90 characters into 3 rows at 40
    columns: the redraw must climb all of them (2 cursor-ups), not the 1 row rich drew."""
    import io

    from rich.console import Console
    from rich.text import Text

    from hpsearch.views.progress import ReflowSafeLive

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, height=40, color_system=None)
    with ReflowSafeLive(Text("x" * 90), console=console, auto_refresh=False, transient=True) as live:
        live.refresh()
        console.width = 40
        out.seek(0)
        out.truncate()
        live.update(Text("y" * 30), refresh=True)
        redraw = out.getvalue()
        assert redraw.count("\x1b[1A") == 2, repr(redraw)
        out.seek(0)
        out.truncate()
        live.update(Text("z" * 30), refresh=True)  # same width: one line drawn, none to climb
        assert out.getvalue().count("\x1b[1A") == 0


def test_trials_shows_the_most_important_parameters_where_not_all_fit(work: Work) -> None:
    """Space order cut `optimizer` and `lr` even at 120 columns; from 10 completed trials the
    columns that fit are the parameters that mattered, and the line under the table says so."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    from hpsearch.data import DataSpec
    from hpsearch.store.records import SETTINGS
    from hpsearch.study.declaration import StoredSettings

    study = optuna.create_study(study_name="wide", storage=work.url, direction="maximize")
    study.set_user_attr(SETTINGS, StoredSettings(data=DataSpec("digits"), max_epochs=3, metric="val_top1", seed=0,
                                                 module="wide").to_dict())
    noise = [f"unimportant_knob_{i}" for i in range(8)]
    dists = {**{n: CategoricalDistribution(["left", "right"]) for n in noise}, "lr": FloatDistribution(1e-4, 1.0, log=True)}
    for i in range(30):
        lr = 10 ** (-4 + 4 * i / 29)
        study.add_trial(create_trial(params={**{n: ["left", "right"][(i * (k + 1)) % 2] for k, n in enumerate(noise)},
                                             "lr": lr}, distributions=dists, value=1 - abs(lr - 0.01),
                                     state=TrialState.COMPLETE, user_attrs={"epochs": 3}))
    work.runner.env = {"COLUMNS": "80"}  # type: ignore[attr-defined]
    lines = work.cli("trials", "wide").output.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("#"))
    assert header.split()[6] == "lr"  # the one parameter that sets the score, first after the fixed columns
    assert "+7 less important parameters not shown:" in " ".join(lines)
