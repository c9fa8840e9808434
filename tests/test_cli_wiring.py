"""The CLI is wiring: each command turns its options into one service request, and refuses bad
input before any service runs. Tested in-process with the service replaced (Typer's CliRunner),
so these take milliseconds; the real services are tested end to end in the package folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from conftest import Work
from hpsearch.data import DataSpec
from hpsearch.errors import HpsearchError
from hpsearch.run import supervisor
from hpsearch.store.records import SETTINGS
from hpsearch.study.declaration import StoredSettings
from hpsearch.train.options import Speedups


class Stop(HpsearchError):
    """Raised by a fake service once it has seen its request: the CLI prints it as one line."""


def _study(work: Work) -> None:
    study = optuna.create_study(study_name="wired", storage=work.url, direction="maximize")
    settings = StoredSettings(data=DataSpec("digits"), max_epochs=3, metric="val_top1", seed=0, module="wired")
    study.set_user_attr(SETTINGS, settings.to_dict())
    dist = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    study.add_trials([create_trial(params={"lr": 1e-3 * (i + 1)}, distributions=dist, value=v, state=TrialState.COMPLETE,
                                   intermediate_values={1: v}, user_attrs={"epochs": 1, "seed": i})
                      for i, v in enumerate([0.5, 0.9, 0.7])])


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[supervisor.RunRequest]:
    seen: list[supervisor.RunRequest] = []

    def fake(req: supervisor.RunRequest, console: Any = None) -> supervisor.RunResult:
        seen.append(req)
        return supervisor.RunResult(study_name=req.study, n_trials=req.n_trials or 0, started=0,
                                    states={"COMPLETE": 2}, best_number=1, best_value=0.9, best_params={"lr": 0.002})

    monkeypatch.setattr(supervisor, "run", fake)
    return seen


def test_run_turns_its_options_into_one_request(work: Work, runs: list[supervisor.RunRequest],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_FUSE", "1")
    monkeypatch.setenv("HPSEARCH_CPU_SLOTS", "3")
    r = work.cli("run", "digits", "--workers", "auto", "--n-trials", "7", "--timeout", "30", "--pruner",
                 "median-time", "--sampler", "qmc", "--trials-per-worker", "2", "--seed", "5", "--name", "d2",
                 "--storage", "sqlite:///x.db", "--device", "cpu")
    (req,) = runs
    assert (req.study, req.workers, req.n_trials, req.timeout, req.pruner, req.sampler) == (
        "digits", "auto", 7, 30.0, "median-time", "qmc", )
    assert (req.trials_per_worker, req.seed, req.name, req.storage, req.device) == (2, 5, "d2", "sqlite:///x.db", "cpu")
    assert req.speedups == Speedups(fuse=True) and req.cpu_slots == 3  # read once, here at the edge
    assert "digits: 2 trials" in r.output
    work.cli("run", "digits", "--workers", "3")
    assert runs[1].workers == 3 and runs[1].pruner == "median" and runs[1].sampler is None
    assert runs[1].speedups == Speedups(fuse=True) and isinstance(runs[1].data_root, Path)


@pytest.mark.parametrize("args, env, exit_code, says", [
    (["--workers", "two"], {}, 2, "--workers must be >= 1 or auto, got 'two'"),
    (["--pruner", "fastest"], {}, 2, "'fastest' is not a pruner; choose from median, median-time, hyperband, none"),
    (["--sampler", "grid"], {}, 2, "'grid' is not a sampler; choose from tpe, random, qmc, cmaes, nsga2"),
    ([], {"HPSEARCH_FUSE": "yes"}, 1, "HPSEARCH_FUSE='yes'"),
    ([], {"HPSEARCH_CAPTURE": "on"}, 1, "HPSEARCH_CAPTURE='on'"),
])
def test_run_refuses_bad_input_before_the_service(work: Work, runs: list[supervisor.RunRequest],
                                                  monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                  env: dict[str, str], exit_code: int, says: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = work.cli("run", "digits", *args, expect=exit_code)
    assert says in r.output and "Traceback" not in r.output and not runs


def test_best_retrain_turns_its_options_into_one_retrain_request(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpsearch.results import retrain

    seen: list[retrain.RetrainRequest] = []

    def fake(study: optuna.Study, req: retrain.RetrainRequest, *a: Any) -> retrain.Retrained:
        seen.append(req)
        raise Stop("stopped by the test")

    monkeypatch.setattr(retrain, "retrain", fake)
    _study(work)
    monkeypatch.setenv("HPSEARCH_CAPTURE", "1")
    r = work.cli("best", "--retrain", "--seeds", "3", "--top-k", "2", "--force", "--trial", "1", "--epochs", "4",
                 "--refit", "--device", "cpu", "--out", "ckpts", "--allow-module-change", expect=1)
    assert r.output.strip() == "error: stopped by the test"
    (req,) = seen
    assert (req.seeds, req.top_k, req.force, req.trial, req.epochs, req.refit) == (3, 2, True, 1, 4, True)
    assert (req.out_dir, req.storage_url, req.allow_module_change, req.allow_data_change) == (
        Path("ckpts"), "sqlite:///hpsearch.db", True, False)  # the default database, in the working folder
    assert req.speedups == Speedups(capture=True) and str(req.device) == "cpu"
    r = work.cli("best", "--refit", expect=2)  # --refit without --retrain: refused before any service
    assert "--refit applies to --retrain" in r.output and len(seen) == 1


def test_compare_test_hands_the_comparison_to_the_one_door(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpsearch.results import compare_test

    seen: list[dict[str, Any]] = []

    def fake(study: optuna.Study, comparison: Any, **kw: Any) -> dict[str, Any]:
        seen.append({"by": comparison.by, **kw})
        raise Stop("stopped by the test")

    monkeypatch.setattr(compare_test, "groups_on_test_split", fake)
    _study(work)
    r = work.cli("compare", "wired", "--by", "lr", "--test", "--device", "cpu", expect=1)
    assert r.output.strip().endswith("error: stopped by the test")
    (call,) = seen
    assert call["by"] == ["lr"] and call["storage_url"] == "sqlite:///hpsearch.db" and call["speedups"] == Speedups()
    r = work.cli("compare", "wired", "--by", "lr")  # without --test: validation only, no service
    assert "lr" in r.output and len(seen) == 1


def test_run_studies_and_report_speak_json(work: Work, runs: list[supervisor.RunRequest]) -> None:
    import json

    shown = json.loads(work.cli("run", "digits", "--json").stdout)  # the live view goes to stderr
    assert shown["study_name"] == "digits" and shown["best_number"] == 1 and shown["best_params"] == {"lr": 0.002}
    _study(work)
    (line,) = json.loads(work.cli("studies", "--json").stdout)
    assert line["name"] == "wired" and line["states"] == {"COMPLETE": 3} and line["best_trial"] == 1
    report = json.loads(work.cli("report", "--json", "--plotlyjs", "cdn").stdout)
    assert report["study"] == "wired" and Path(report["path"]).stat().st_size == report["bytes"]


def test_trials_and_compare_default_to_the_only_study_and_names_complete(work: Work,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _study(work)
    assert len(work.cli("trials", "--format", "json").stdout.split('"number"')) == 4  # its 3 trials
    assert "best row by validation mean: lr=0.002" in " ".join(work.cli("compare", "--by", "lr").output.split())
    # what the shell gets back for `hpsearch best w<TAB>` and `hpsearch run dig<TAB>`
    for words, want in (("hpsearch best w", "wired"), ("hpsearch run dig", "digits")):
        monkeypatch.setenv("_HPSEARCH_COMPLETE", "complete_bash")
        monkeypatch.setenv("COMP_WORDS", words)
        monkeypatch.setenv("COMP_CWORD", "2")
        r = work.runner.invoke(__import__("hpsearch.cli", fromlist=["app"]).app, [], prog_name="hpsearch")
        assert want in r.output.split(), (words, r.output)
