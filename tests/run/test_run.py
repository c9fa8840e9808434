"""`hpsearch run` end to end: real spawned workers, a real SQLite file, digits or fake MNIST."""

import json
import re
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from conftest import Finished, Work
from hpsearch import TrialConfig
from hpsearch.data import DataSpec, load_search_data
from hpsearch.store.records import CONFIG, CURVES, config_of, curves_of_trial
from hpsearch.train.loop import fit

pytestmark = pytest.mark.slow


def trials(work: Work, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=work.url).get_trials()


def states(work: Work, name: str = "tiny") -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials(work, name):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def test_budget_is_exact_across_workers_and_a_rerun_adds_nothing(store: Work) -> None:
    work = store
    r = work.cli("run", "tiny", "--workers", "3", "--n-trials", "7", "--pruner", "none")
    ts = trials(work)
    assert len(ts) == 7 and all(t.state == TrialState.COMPLETE for t in ts)
    assert re.search(r"complete\s*│\s*7\s*│", r.output) and "next: hpsearch best tiny --retrain" in r.output
    assert len({t.user_attrs["worker"] for t in ts}) >= 2  # the work really was shared
    again = work.cli("run", "tiny", "--workers", "3", "--n-trials", "7")
    assert "budget reached" in again.output and len(trials(work)) == 7


def test_an_interrupted_budget_is_topped_up(store: Work, tiny_search: Finished) -> None:
    work = store
    work.adopt(tiny_search)  # 4 trials finished (the session's search)
    work.cli("run", "tiny", "--n-trials", "6")
    s = states(work)
    assert s.get("COMPLETE", 0) + s.get("PRUNED", 0) == 6 and "RUNNING" not in s


def test_each_trial_records_its_evidence_and_its_seed_reproduces_it(work: Work) -> None:
    work.cli("run", "tiny", "--workers", "1", "--n-trials", "2", "--seed", "11")
    t = trials(work)[1]
    assert set(t.user_attrs) >= {"n_params", "seconds", "device", "seed", "epochs", "threads"}
    # the bulky records are system attributes: optuna-dashboard's trial page stays readable
    assert not {"curves", "config"} & set(t.user_attrs) and {CONFIG, CURVES} <= set(t.system_attrs)
    curves = curves_of_trial(t)
    assert len(curves["val_top1"]) == 3 == len(t.intermediate_values)
    assert max(len(json.dumps(v)) for v in t.user_attrs.values()) < 200
    torch.set_num_threads(t.user_attrs["threads"])
    data = load_search_data(DataSpec("digits"), Path("."))
    again = fit(TrialConfig.from_dict(config_of(t)), data, epochs=3, seed=t.user_attrs["seed"],
                device=torch.device("cpu"))
    assert again.curves()["train_loss"] == curves["train_loss"]
    assert again.curves()["val_top1"] == curves["val_top1"]


def test_the_test_split_is_never_needed_by_run(work: Work, fake_mnist: Path) -> None:
    """The fake MNIST root has no t10k files at all: the search must not notice."""
    work.cli("run", "tiny_mnist", "--workers", "2", "--n-trials", "2", "--data-root", str(fake_mnist))
    assert states(work, "tiny_mnist") == {"COMPLETE": 2}
    r = work.cli("best", "tiny_mnist", "--retrain", "--seeds", "1", "--data-root", str(fake_mnist), expect=1)
    assert "missing t10k-images-idx3-ubyte" in r.output


def test_repeated_failures_stop_the_run_with_the_error(store: Work) -> None:
    work = store
    r = work.cli("run", "crashing", "--workers", "1", "--n-trials", "10", expect=3)
    assert "3 trials in a row failed" in r.output and "boom: this space always fails" in r.output
    assert "Traceback" not in r.output
    assert states(work, "crashing") == {"FAIL": 3}


@pytest.mark.parametrize("args, message, code", [
    (["run", "nope"], "unknown study 'nope'; available in studies/:", 1),
    (["run", "fashion_mnist", "--data-root", "empty"], "missing train-images-idx3-ubyte", 1),
    (["run", "tiny", "--storage", "hpsearch.db"], "bad storage URL", 2),
    (["run", "tiny", "--workers", "0"], "--workers must be >= 1", 2),
    (["run", "tiny", "--timeout", "0"], "--timeout must be > 0 seconds, got 0; leave it out", 2),
    (["run", "tiny", "--timeout", "-5"], "--timeout must be > 0 seconds, got -5", 2),
    (["run", "tiny", "--name", "../../escaped"], "study name '../../escaped' is not allowed", 2),
    (["run", "tiny", "--name", ".hidden"], "study name '.hidden' is not allowed", 2),
    (["run", "tiny", "--name", "a/b"], "study name 'a/b' is not allowed", 2),
])
def test_bad_input_is_one_line_and_leaves_no_study_behind(work: Work, args: list[str], message: str, code: int) -> None:
    r = work.cli(*args, expect=code)  # 2: an option's value cannot work (a usage error); 1: what it names is not there
    assert message in r.output and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    if work.db.exists():
        assert optuna.get_all_study_names(work.url) == []


def test_a_study_created_by_a_failed_run_is_removed(store: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything validated and the study created, then the workers cannot start: no empty study remains."""
    work = store
    import hpsearch.run.supervisor

    def no_processes(self, job):  # noqa: ANN001, ANN202
        raise OSError("cannot fork: resource temporarily unavailable")

    monkeypatch.setattr(hpsearch.run.supervisor.WorkerPool, "start", no_processes)
    r = work.cli("run", "tiny", "--n-trials", "2", expect=1)
    assert "OSError: cannot fork" in r.output
    assert optuna.get_all_study_names(work.url) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device exists here")
def test_cuda_without_a_gpu_is_refused_before_anything_is_written(work: Work) -> None:
    r = work.cli("run", "tiny", "--device", "cuda", expect=1)
    assert "no CUDA device is available" in r.output and not work.db.exists()


def test_joining_with_different_settings_is_refused(store: Work, tiny_search: Finished) -> None:
    work = store
    work.adopt(tiny_search)  # searched with the default seed, 0
    r = work.cli("run", "tiny", "--n-trials", "6", "--seed", "2", expect=1)
    assert "already exists with other settings (seed: stored 0, now 2)" in r.output
    assert len(trials(work)) == 4


@pytest.mark.slow
def test_a_deadline_stops_running_trials_too(work: Work) -> None:
    """--timeout only stops new trials: one run trained on to 578 s of a 300-s budget (issue 37).
    --deadline stops a trial that would take minutes at the end of its epoch, pruned there."""
    r = work.cli("run", "long", "--workers", "1", "--n-trials", "3", "--pruner", "none", "--deadline", "8")
    trials = optuna.load_study(study_name="long", storage=work.url).get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED], r.output  # no trial started after it
    (t,) = trials
    assert 1 <= len(t.intermediate_values) < 2000 and t.user_attrs["epochs"] == len(t.intermediate_values)
    assert "--deadline of 8s reached" in " ".join(r.output.split())
    assert "--deadline must be > 0 seconds, got 0" in work.cli("run", "long", "--deadline", "0", expect=2).output
