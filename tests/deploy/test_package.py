"""The package as `pip install` gives it: built into a wheel from a copy of the tree, run from a
folder that is not the clone. The shipped studies travel with it (issue 35: "outside the clone
nothing runs")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_an_installed_copy_finds_the_shipped_studies_from_any_folder(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, tree / part)
    for part in ("src", "studies"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                        "-w", str(tmp_path / "dist"), str(tree)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("hpsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"hpsearch/shipped/digits.py", "hpsearch/shipped/__init__.py", "hpsearch/cli.py"} <= set(names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STUDIES"} | {"PYTHONPATH": str(site)}

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=300)

    found = python("-c", "from hpsearch.study.discover import resolve; print(resolve('digits'))")
    assert Path(found.stdout.strip()) == site / "hpsearch" / "shipped" / "digits.py", found.stderr
    missing = python("-m", "hpsearch", "run", "nope")
    assert missing.returncode == 1 and "unknown study 'nope'" in missing.stderr
    assert "shipped with hpsearch: " in missing.stderr and "digits" in missing.stderr
