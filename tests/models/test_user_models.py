"""The user's own model end to end: search, retrain, report, and a checkpoint that reloads in a
fresh process elsewhere; size limits; and databases/checkpoints written by hpsearch 0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from conftest import Work
from hpsearch.data import DataSpec, load_test_data
from hpsearch.results.checkpoints import load_checkpoint
from hpsearch.store.records import RETRAIN, study_get
from hpsearch.tasks._classify import evaluate

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parents[1] / "fixtures" / "dc7b503"

RELOAD = """
import json, sys, torch
from hpsearch.results.checkpoints import load_checkpoint
from hpsearch.models import registered, spec_from_dict
model, ckpt = load_checkpoint(sys.argv[1], trust_code=True)  # the test made it: trusted
spec = spec_from_dict(ckpt["model"])
x = torch.zeros(1, *ckpt["dataset"]["shape"])
print(json.dumps({"spec": type(spec).__name__, "module": type(spec).__module__,
                  "params": sum(p.numel() for p in model.parameters()), "out": model(x)[0].tolist()}))
"""


def reload_elsewhere(ckpt: Path, folder: Path) -> dict:
    """load_checkpoint in a fresh interpreter, in a folder with no studies beside it."""
    folder.mkdir()
    moved = folder / ckpt.name
    shutil.copy(ckpt, moved)
    out = subprocess.run([sys.executable, "-c", RELOAD, str(moved)], cwd=folder, capture_output=True, text=True,
                         env={k: v for k, v in __import__("os").environ.items() if k != "HPSEARCH_STUDIES"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_user_spec_is_searched_retrained_reported_and_reloads_in_another_folder(work: Work) -> None:
    work.cli("run", "tiny_mlp", "--n-trials", "2", "--pruner", "none")
    work.cli("best", "tiny_mlp", "--retrain", "--seeds", "3")
    study = optuna.load_study(study_name="tiny_mlp", storage=work.url)
    rec = study_get(study, RETRAIN)
    searched = study.trials[rec["trial"]]
    assert searched.user_attrs["model"] == "tiny_mlp" and len(rec["runs"]) == 3
    for run in rec["runs"]:  # the retrained model is the searched one, not the built-in CNN
        model, ckpt = load_checkpoint(Path(run["checkpoint"]))
        assert sum(p.numel() for p in model.parameters()) == searched.user_attrs["n_params"]
        assert ckpt["model"] == {"name": "tiny_mlp", "hidden": searched.params["hidden"]}
    from optuna_dashboard import get_note

    note = get_note(study)  # the dashboard's study note names the retrained model
    assert f"`tiny_mlp(hidden={searched.params['hidden']})`, {searched.user_attrs['n_params']:,} parameters" in note
    work.cli("report", "tiny_mlp")
    assert (work.path / "tiny_mlp-report.html").stat().st_size > 100_000

    shutil.move(work.path / "studies", work.path / "studies-gone")
    first = Path(rec["runs"][0]["checkpoint"])
    got = reload_elsewhere(first, work.path / "elsewhere")
    model, _ = load_checkpoint(first)
    assert got["spec"] == "TinyMLP" and got["params"] == searched.user_attrs["n_params"]
    assert got["out"] == pytest.approx(model(torch.zeros(1, 1, 8, 8))[0].tolist(), abs=1e-5)


def test_retrain_refuses_a_study_module_changed_since_the_search(work: Work) -> None:
    work.cli("run", "tiny_mlp", "--n-trials", "1", "--pruner", "none")
    module = work.path / "studies" / "tiny_mlp.py"
    module.write_text(module.read_text().replace("nn.ReLU()", "nn.Tanh()"))
    r = work.cli("best", "tiny_mlp", "--retrain", "--seeds", "1", expect=1)
    assert "tiny_mlp.py changed since the search" in r.output and "--allow-module-change" in r.output
    assert "Traceback" not in r.output and study_get(optuna.load_study(
        study_name="tiny_mlp", storage=work.url), RETRAIN) is None
    work.cli("best", "tiny_mlp", "--retrain", "--seeds", "1", "--allow-module-change")


def test_helper_modules_beside_the_study_travel_with_checkpoints_and_count_in_the_fingerprint(work: Work) -> None:
    work.cli("run", "uses_helper", "--n-trials", "1", "--pruner", "none")
    work.cli("best", "uses_helper", "--retrain", "--seeds", "1")
    rec = study_get(optuna.load_study(study_name="uses_helper", storage=work.url), RETRAIN)
    ckpt = Path(rec["runs"][0]["checkpoint"])
    helper = work.path / "studies" / "_blocks.py"
    helper.write_text(helper.read_text().replace("WIDTH = 32", "WIDTH = 48"))
    r = work.cli("run", "uses_helper", "--n-trials", "2", "--pruner", "none", expect=1)
    assert "the module's source changed" in r.output
    shutil.move(work.path / "studies", work.path / "studies-gone")
    assert reload_elsewhere(ckpt, work.path / "elsewhere")["spec"] == "TwoLayer"


def test_max_params_rejects_configs_before_any_training_step(work: Work) -> None:
    work.cli("run", "capped", "--n-trials", "6", "--pruner", "none")
    trials = optuna.load_study(study_name="capped", storage=work.url).trials
    big = [t for t in trials if t.params["units"] == 512]
    small = [t for t in trials if t.params["units"] == 8]
    assert big and small, "the seeded sampler drew only one size; change the study seed"
    for t in big:
        assert t.state == TrialState.PRUNED and not t.intermediate_values and "epochs" not in t.user_attrs
        assert "max_params 2,000" in t.user_attrs["rejected"]
    assert all(t.state == TrialState.COMPLETE and t.user_attrs["n_params"] <= 2000 for t in small)
    assert all(t.user_attrs["flops"] > 0 for t in trials)
    table = work.cli("trials", "capped", "--columns", "number,state,params,flops,error").output
    assert "params" in table and "flops" in table and "rejected before" not in table
    rows = json.loads(work.cli("trials", "capped", "--format", "json").output)
    assert {r["model"] for r in rows} == {"mlp"} and all(r["flops"] for r in rows)


def test_a_database_and_checkpoint_written_by_hpsearch_0_1_still_open(work: Work) -> None:
    shutil.copy(FIXTURES / "legacy.db", work.db)
    shown = work.cli("best", "legacy").output
    assert "best trial 2" in shown and "test split looked at 1 time" in shown
    work.cli("trials", "legacy")
    work.cli("report", "legacy")
    assert (work.path / "legacy-report.html").is_file()

    model, ckpt = load_checkpoint(FIXTURES / "legacy-checkpoint.pt")
    spec = DataSpec(**{k: ckpt["settings"][k] for k in ("dataset", "val_fraction", "split_seed", "train_subset")})
    mean, std = (torch.tensor(ckpt["normalization"][k]) for k in ("mean", "std"))
    _, top1, _, _ = evaluate(model, load_test_data(spec, work.path, mean, std, look=lambda: None), 3)
    assert top1 == pytest.approx(ckpt["metrics"]["test_top1"])

    r = work.cli("best", "legacy", "--retrain", "--force", "--seeds", "1")  # the old config retrains today
    assert "test split looked at 2 times" in r.output
    study = optuna.load_study(study_name="legacy", storage=work.url)
    assert "hpsearch:retrain" in study.user_attrs  # the old record stays where the old version put it,
    assert study_get(study, RETRAIN)["test_looks"] == 2  # the new one is read first
    assert study.user_attrs["retrain"].endswith("over 1 seed (test look 2)")


def test_a_checkpoint_with_user_code_is_refused_when_code_is_not_trusted(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    script = ("import sys\nfrom hpsearch.results.checkpoints import load_checkpoint\nfrom hpsearch.errors import ModelError\n"
              "try:\n    load_checkpoint(sys.argv[1], trust_code=False)\nexcept ModelError as e:\n    print(e)\n")
    study = Path(__file__).parents[1] / "studies" / "tiny_mlp.py"
    make = (f"import importlib.util, sys\nspec = importlib.util.spec_from_file_location('hpsearch_study_tiny_mlp', "
            f"{str(study)!r})\nm = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m\n"
            "spec.loader.exec_module(m)\nfrom hpsearch.results.checkpoints import save\nfrom hpsearch.models import build\n"
            "from hpsearch.data import get_source\ninfo = get_source('digits').info\nspec = m.TinyMLP(hidden=5)\n"
            f"save(__import__('pathlib').Path({str(folder / 'c.pt')!r}), build(spec, info), spec, "
            "{'dataset': {'shape': list(info.shape), 'classes': list(info.classes)}})\n")
    subprocess.run([sys.executable, "-c", make], check=True, cwd=folder)
    out = subprocess.run([sys.executable, "-c", script, str(folder / "c.pt")], capture_output=True, text=True,
                         cwd=folder, check=True).stdout
    assert "model TinyMLP is defined by code stored in the checkpoint" in out and "trust_code=True" in out
    assert reload_elsewhere(folder / "c.pt", tmp_path / "other")["spec"] == "TinyMLP"  # trusted: it loads
    # by default too: the code that ran was stored without being trusted (issue 34, attack 6)
    default = script.replace(", trust_code=False", "") + "else:\n    print('loaded')\n"
    out = subprocess.run([sys.executable, "-c", default, str(folder / "c.pt")], capture_output=True, text=True,
                         cwd=folder, check=True).stdout
    assert "defined by code stored in the checkpoint" in out and "./studies" in out
    (folder / "studies").mkdir()  # the user's own module, beside the checkpoint: its source matches, trusted
    shutil.copy(study, folder / "studies" / "tiny_mlp.py")
    out = subprocess.run([sys.executable, "-c", default, str(folder / "c.pt")], capture_output=True, text=True,
                         cwd=folder, check=True).stdout
    assert out.strip() == "loaded"
    (folder / "studies" / "tiny_mlp.py").write_text(study.read_text() + "\n# changed\n")
    out = subprocess.run([sys.executable, "-c", default, str(folder / "c.pt")], capture_output=True, text=True,
                         cwd=folder, check=True).stdout
    assert "defined by code stored in the checkpoint" in out  # another source: not the user's module


def test_a_builtin_models_checkpoint_never_runs_stored_code(tmp_path: Path) -> None:
    """A checkpoint of the built-in CNN that carries code (forged: hpsearch stores none for it)
    loads without running it, trusted or not."""
    from hpsearch import CNN
    from hpsearch.data import get_source
    from hpsearch.models import build
    from hpsearch.results.checkpoints import save

    info = get_source("digits").info
    path = tmp_path / "cnn.pt"
    save(path, build(CNN(filters=4), info), CNN(filters=4), {"dataset": {"shape": list(info.shape),
                                                                          "classes": list(info.classes)}})
    ckpt = torch.load(path, weights_only=True)
    marker = tmp_path / "ran"
    ckpt["code"] = {"module": "forged_payload", "class": "CNN", "sources": {
        "forged_payload": {"source": f"open({str(marker)!r}, 'w').write('x')\n", "package": False}}}
    torch.save(ckpt, path)
    for trust in (False, True):
        model, _ = load_checkpoint(path, trust_code=trust)
        assert type(model).__name__ and not marker.exists() and "forged_payload" not in sys.modules
