"""``benchmarks/gpu.py`` runs (it measures only on a GPU): without CUDA it refuses in one line;
``--device cpu --quick`` takes every training path it times, so a GPU session finds it working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_idx

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    """Only what gpu.py documents it reads: FashionMNIST's train IDX pair (here generated)."""
    write_idx(tmp_path / "FashionMNIST" / "raw", "train", 1200, seed=0)
    return tmp_path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_without_cuda_it_says_so_in_one_line(fashion_root: Path) -> None:
    r = run("--root", str(fashion_root))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("benchmarks/gpu.py: no CUDA device here; run it where a GPU is lent "
                                "(or with --device cpu --quick to check the script)")


def test_quick_cpu_mode_takes_every_training_path(fashion_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    r = run("--root", str(fashion_root), "--device", "cpu", "--quick", "--parts", "epoch", "fused", "retrain",
            "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["quick"] and result["device"] == "cpu" and result["train_images"] == 512
    assert result["epoch"]["eager"]["train_s"] > 0 and result["epoch"]["dataloader"]["train_s"] > 0
    assert not result["epoch"]["captured"]["captured"]  # a CPU never captures
    assert result["fused"]["eager"]["fused"] and result["fused"]["eager"]["k"] == 2
    assert result["retrain"]["seeds_2_fused"] and result["retrain"]["ratio"] > 0


def test_quick_cpu_mode_packs_the_grid_into_one_worker(fashion_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    r = run("--root", str(fashion_root), "--device", "cpu", "--quick", "--parts", "pack", "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    pack = json.loads(out.read_text())["pack"]
    assert [pack[w]["complete"] for w in ("one_at_a_time", "workers_4", "trials_per_worker_8")] == [4, 4, 4]
    assert pack["trials_per_worker_8"]["fused"] == 4  # the quick grid's four trials trained as one model
    assert pack["one_at_a_time"]["fused"] == pack["workers_4"]["fused"] == 0
    assert set(pack["speedup"]) == {"workers_4", "trials_per_worker_8"}
