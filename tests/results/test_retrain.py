"""`hpsearch best --retrain`: seeds, one look at the test split, records, checkpoints, --top-k."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from conftest import Finished, Work
from hpsearch import load_checkpoint
from hpsearch.data import DataSpec, load_search_data, load_test_data
from hpsearch.store.records import PENDING, RETRAIN, looks_counted, study_get
from hpsearch.store.storage import try_exclusive
from hpsearch.tasks._classify import evaluate

pytestmark = pytest.mark.slow


def record(work: Work, name: str = "tiny_mnist") -> dict:
    return study_get(optuna.load_study(study_name=name, storage=work.url), RETRAIN)


def test_retrain_evaluates_once_then_shows_the_record_until_forced(searched_any: tuple[Work, Path]) -> None:
    work, root = searched_any
    r = work.cli("best", "--retrain", "--seeds", "2", "--data-root", str(root))
    assert "evaluated once on the test split" in r.output and "test split looked at 1 time" in r.output
    rec = record(work)
    assert rec["test_looks"] == 1 and len(rec["runs"]) == 2 and len(set(rec["seeds"])) == 2
    assert set(rec["test"]) == {"loss", "top1", "topk"} and len(rec["test"]["top1"]["values"]) == 2

    # A second --retrain must not touch the test split: take the test files away to prove it.
    for f in (root / "MNIST" / "raw").glob("t10k-*"):
        f.rename(f.with_suffix(".hidden"))
    again = work.cli("best", "--retrain", "--data-root", str(root))
    assert "recorded result shown" in again.output and record(work)["test_looks"] == 1
    forced = work.cli("best", "--retrain", "--force", "--seeds", "2", "--data-root", str(root), expect=1)
    assert "missing t10k-images-idx3-ubyte" in forced.output
    for f in (root / "MNIST" / "raw").glob("t10k-*.hidden"):
        f.rename(f.with_suffix(""))
    work.cli("best", "--retrain", "--force", "--seeds", "2", "--data-root", str(root))
    rec2 = record(work)
    assert rec2["test_looks"] == 2 and set(rec2["seeds"]).isdisjoint(rec["seeds"])


def test_checkpoints_rebuild_the_model_and_reproduce_the_recorded_test_score(searched: tuple[Work, Path]) -> None:
    work, root = searched
    work.cli("best", "--retrain", "--seeds", "1", "--data-root", str(root), "--out", "ckpts")
    run = record(work)["runs"][0]
    model, ckpt = load_checkpoint(Path(run["checkpoint"]))
    assert Path(run["checkpoint"]).parent == work.path / "ckpts" / "tiny_mnist"
    assert ckpt["study"] == "tiny_mnist" and ckpt["seed"] == run["seed"] and "torch" in ckpt["versions"]
    spec = DataSpec(**{k: ckpt["settings"][k] for k in ("dataset", "val_fraction", "split_seed", "train_subset")})
    data = load_search_data(spec, root)
    mean, std = torch.tensor(ckpt["normalization"]["mean"]), torch.tensor(ckpt["normalization"]["std"])
    test = load_test_data(spec, root, mean, std, look=lambda: None)
    _, top1, _, _ = evaluate(model.to(memory_format=torch.channels_last), test, 3)
    assert top1 == pytest.approx(run["test_top1"]) and torch.allclose(mean, data.mean)


def test_top_k_rescoring_chooses_by_the_mean_of_fresh_seeds(searched: tuple[Work, Path]) -> None:
    work, root = searched
    r = work.cli("best", "--retrain", "--top-k", "2", "--seeds", "2", "--data-root", str(root))
    rec = record(work)
    assert len(rec["candidates"]) == 2 and "re-scored on the validation split" in r.output
    means = {c["trial"]: c["mean"] for c in rec["candidates"]}
    assert rec["trial"] == max(means, key=means.get)
    assert rec["val"]["top1"]["mean"] == pytest.approx(means[rec["trial"]])


def test_json_output_has_the_documented_keys(searched_any: tuple[Work, Path]) -> None:
    work, root = searched_any
    out = json.loads(work.cli("best", "tiny_mnist", "--json").stdout)
    assert out["study"] == "tiny_mnist" and set(out["best_trial"]) >= {"number", "value", "params"}
    assert "retrain" not in out
    r = work.cli("best", "tiny_mnist", "--retrain", "--seeds", "2", "--json", "--data-root", str(root))
    out = json.loads(r.stdout)
    test = out["retrain"]["test"]
    assert out["retrain"]["test_looks"] == 1 and len(out["retrain"]["seeds"]) == 2
    assert set(test["top1"]) == {"mean", "std", "values"} and set(test["loss"]) == {"mean", "std", "values"}
    for run in out["retrain"]["runs"]:  # each seed's best epoch, and its validation there
        assert 1 <= run["best_epoch"] <= out["retrain"]["epochs"]
        assert run["val_at_best"]["val_top1"] >= run["val_top1"] and set(run["val_at_best"]) >= {"val_loss", "val_top1"}


def test_best_without_a_completed_trial_is_one_line(work: Work) -> None:
    work.cli("run", "crashing", "--n-trials", "3", expect=3)
    r = work.cli("best", "crashing", expect=1)
    assert "has no completed trial yet (3 fail)" in r.output and "Traceback" not in r.output


def test_digits_retrain_reaches_a_sensible_accuracy(tiny_retrained: Finished) -> None:
    """A real (small) search + retrain on digits (the session's, 4 trials by 2 workers, 2 seeds):
    the test score is measured, not assumed."""
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_retrained.db}")
    rec = study_get(study, RETRAIN)
    assert rec["test_looks"] == 1 and len(rec["runs"]) == 2 and rec["test"]["top1"]["mean"] > 0.8


KILL_AT_EVALUATION = """
import os, sys
import hpsearch.results.retrain as r
calls, kill_at = [], int(sys.argv[1])
def evaluate(*a, **kw):
    calls.append(1)
    if len(calls) == kill_at:
        os._exit(137)  # what kill -9 leaves: no finally block, no record
    return real(*a, **kw)
real, r.evaluate = r.evaluate, evaluate
from hpsearch.cli import main
sys.argv = ["hpsearch", *sys.argv[2:]]
main()
"""


def test_a_retrain_killed_during_its_test_evaluation_still_counts_the_look(searched: tuple[Work, Path]) -> None:
    """Killed after its first checkpoint: the look is counted (write-ahead) and the rerun's seeds
    are fresh, so it overwrites nothing."""
    work, root = searched
    args = ["best", "--retrain", "--seeds", "2", "--data-root", str(root)]
    killed = subprocess.run([sys.executable, "-c", KILL_AT_EVALUATION, "2", *args], cwd=work.path,
                            env={**os.environ, "HPSEARCH_STORAGE": work.url}, capture_output=True, text=True)
    assert killed.returncode == 137, killed.stdout + killed.stderr
    first = list((work.path / "runs" / "tiny_mnist").glob("*.pt"))
    assert len(first) == 1 and study_get(optuna.load_study(study_name="tiny_mnist",
                                                                      storage=work.url), RETRAIN) is None
    before = first[0].stat().st_mtime_ns
    r = work.cli(*args)
    assert "killed during test look 1; that look counts" in r.output and "test split looked at 2 times" in r.output
    rec = record(work)
    assert rec["test_looks"] == 2 and rec["interrupted_looks"] == [1]
    assert first[0].stat().st_mtime_ns == before and len(list((work.path / "runs" / "tiny_mnist").glob("*.pt"))) == 3


def test_a_second_concurrent_retrain_is_refused_and_the_looks_add_up(searched_any: tuple[Work, Path]) -> None:
    work, root = searched_any
    work.cli("best", "--retrain", "--seeds", "1", "--data-root", str(root))
    env = {**os.environ, "HPSEARCH_STORAGE": work.url}
    # long enough (3 seeds × 100 epochs, seconds) that it still holds the lock when the second asks:
    # with the search's 2 epochs it once finished first on a loaded machine and the second looked too
    first = subprocess.Popen([sys.executable, "-m", "hpsearch", "best", "--retrain", "--force", "--seeds", "3",
                              "--epochs", "100", "--data-root", str(root)], cwd=work.path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "loaded mnist" in first.stdout.readline()  # printed once the first holds the lock
    second = work.cli("best", "--retrain", "--force", "--seeds", "1", "--data-root", str(root), expect=1)
    assert "another `hpsearch best --retrain` of study 'tiny_mnist' is running" in second.output
    assert len(second.output.strip().splitlines()) == 1
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert record(work)["test_looks"] == 2


def test_a_look_through_a_symlinked_database_waits_for_the_one_under_way(searched: tuple[Work, Path]) -> None:
    """Two names for one SQLite file are one database: a forced retrain through a symlink is
    refused while a look through the real path holds the lock, and the count is untouched."""
    work, root = searched
    (work.path / "alias.db").symlink_to(work.db)
    with try_exclusive(work.url, "hpsearch:retrain:tiny_mnist") as mine:
        assert mine
        r = work.cli("best", "--retrain", "--force", "--seeds", "1", "--data-root", str(root),
                     "--storage", f"sqlite:///{work.path / 'alias.db'}", expect=1)
    assert "another `hpsearch best --retrain` of study 'tiny_mnist' is running" in r.output
    study = optuna.load_study(study_name="tiny_mnist", storage=work.url)
    assert study_get(study, RETRAIN) is None and not list((work.path / "runs").glob("**/*.pt"))


KILL_BEFORE_RECORD = """
import os, sys
from hpsearch.results import look
def record(self, record):
    os._exit(137)  # what kill -9 leaves between the look and its record: no finally block
look.Look.record = record
from hpsearch.cli import main
sys.argv = ["hpsearch", *sys.argv[1:]]
main()
"""


def test_a_killed_compare_test_counts_its_look_and_the_next_look_says_so(searched: tuple[Work, Path]) -> None:
    """`compare --test` goes through the same door as a retrain: counted write-ahead and left
    pending if killed, so `studies` shows it and the next look names it."""
    work, root = searched
    killed = subprocess.run([sys.executable, "-c", KILL_BEFORE_RECORD, "compare", "tiny_mnist", "--by", "lr",
                             "--test", "--data-root", str(root)], cwd=work.path,
                            env={**os.environ, "HPSEARCH_STORAGE": work.url}, capture_output=True, text=True)
    assert killed.returncode == 137, killed.stdout + killed.stderr
    study = optuna.load_study(study_name="tiny_mnist", storage=work.url)
    assert looks_counted(study) == 1 and study_get(study, PENDING)["what"] == "compare --test"
    assert "compare --test interrupted (1 look)" in work.cli("studies").output
    r = work.cli("best", "--retrain", "--seeds", "1", "--data-root", str(root))
    assert "an earlier compare --test was killed during test look 1; that look counts" in r.output
    assert "test split looked at 2 times" in r.output
    rec = record(work)
    assert rec["test_looks"] == 2 and rec["interrupted_looks"] == [1]
    assert study_get(optuna.load_study(study_name="tiny_mnist", storage=work.url), PENDING) is None
