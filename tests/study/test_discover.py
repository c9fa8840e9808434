from pathlib import Path

import pytest

from conftest import Work
from hpsearch.errors import StudyModuleError
from hpsearch.study import discover


def test_finds_a_module_by_name_and_by_path(work: Work) -> None:
    by_name = discover.load("digits")
    by_path = discover.load(str(work.path / "studies" / "digits.py"))
    assert by_name.name == by_path.name == "digits" and by_name.study.dataset == "digits"
    assert len(by_name.source_sha256) == 64


def test_unknown_study_lists_the_available_ones(work: Work) -> None:
    with pytest.raises(StudyModuleError, match=r"unknown study 'nope'; available in studies/: .*digits.*fashion_mnist"):
        discover.load("nope")


def test_syntax_error_points_at_file_and_line(work: Work) -> None:
    (work.path / "studies" / "broken.py").write_text("from hpsearch import Study\n\nstudy = Study(\n  dataset=,\n)\n")
    with pytest.raises(StudyModuleError, match=r"broken\.py:4: SyntaxError"):
        discover.load("broken")


def test_import_error_points_at_file_and_line(work: Work) -> None:
    (work.path / "studies" / "badimport.py").write_text("import os\nimport not_a_module_xyz\n")
    with pytest.raises(StudyModuleError, match=r"badimport\.py:2: ModuleNotFoundError: No module named 'not_a_module_xyz'"):
        discover.load("badimport")


def test_invalid_declaration_points_at_the_line(work: Work) -> None:
    (work.path / "studies" / "baddata.py").write_text(
        "from hpsearch import Study, TrialConfig\n\nstudy = Study(dataset='imagenet', space=lambda t: TrialConfig())\n")
    with pytest.raises(StudyModuleError, match=r"baddata\.py:3: ValueError: unknown dataset 'imagenet'; built-in: digits"):
        discover.load("baddata")


def test_missing_declaration_says_what_to_declare(work: Work) -> None:
    (work.path / "studies" / "empty.py").write_text("x = 1\n")
    with pytest.raises(StudyModuleError, match=r"empty\.py: no `study`; a study module must declare `study = hpsearch.Study"):
        discover.load("empty")


def test_studies_dir_from_environment(work: Work, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "mine.py").write_text((work.path / "studies" / "tiny.py").read_text())
    monkeypatch.setenv("HPSEARCH_STUDIES", str(other))
    assert discover.load("mine").name == "mine"


def test_a_space_that_raises_is_caught_before_anything_is_written(work: Work) -> None:
    (work.path / "studies" / "badspace.py").write_text(
        "from hpsearch import Study\n\ndef space(trial):\n    return 1 / 0\n\nstudy = Study(dataset='digits', space=space)\n")
    r = work.cli("run", "badspace", expect=1)
    assert "badspace.py:4: the search space raised ZeroDivisionError: division by zero" in r.output
    assert not work.db.exists()


@pytest.mark.parametrize("body, line, says", [
    ("import torchvision\n"
     "def space(trial):\n    return TrialConfig(model=torchvision.models.resnet18())\n",
     ":4", "must be a registered hpsearch.ModelSpec, got ResNet"),
    ("from torch import nn\n"
     "def space(trial):\n    return nn.Linear(3, 4)\n",
     "", "the space function must return a TrialConfig, got Linear"),
    ("from dataclasses import dataclass\nfrom hpsearch import ModelSpec, register_model\n"
     "@register_model('broken_build')\n@dataclass(frozen=True)\nclass Broken(ModelSpec):\n"
     "    def build(self, info):\n        return 1 / 0\n"
     "def space(trial):\n    return TrialConfig(model=Broken())\n",
     ":8", "ZeroDivisionError: division by zero"),
])
def test_a_model_that_cannot_be_trained_is_refused_when_the_module_loads(work: Work, body: str, line: str,
                                                                         says: str) -> None:
    """Not after three failed trials: one line, and nothing in the database."""
    (work.path / "studies" / "badmodel.py").write_text(
        "from hpsearch import Study, TrialConfig\n" + body + "study = Study(dataset='digits', space=space)\n")
    r = work.cli("run", "badmodel", expect=1)
    assert says in r.output and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert f"badmodel.py{line}: the search space raised" in r.output
    assert not work.db.exists()
