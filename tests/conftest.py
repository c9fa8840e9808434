"""Shared fixtures: a working folder with its own SQLite file, fixture studies, fake data.

Everything is real: studies are real modules, the database a real SQLite file, workers real
processes. Only the data is shrunk (digits, or a tiny generated MNIST/CIFAR on disk).

A test whose subject is not the search itself (listings, retrain, report, dashboard) starts
from a finished study instead of running its own: each such study is searched once per
session by a real ``hpsearch run`` (:func:`tiny_search`, :func:`mnist_search`) and every test
gets its own copy of the database (:meth:`Work.adopt`), so tests cannot see each other's writes.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from hpsearch.cli import app
from pgcluster import PgCluster, bindir

REPO = Path(__file__).resolve().parents[1]
FIXTURE_STUDIES = Path(__file__).parent / "studies"


@dataclass
class Work:
    """A scratch project: ``studies/`` (repo + fixture studies), a storage URL, a data root.

    ``url`` is the default SQLite file, or a fresh Postgres database for ``store`` tests
    (then exported as HPSEARCH_STORAGE, so CLI calls use it without ``--storage``).
    """

    path: Path
    runner: CliRunner
    url: str = ""
    backend: str = "sqlite"

    def __post_init__(self) -> None:
        self.url = self.url or f"sqlite:///{self.db}"

    @property
    def db(self) -> Path:
        return self.path / "hpsearch.db"

    def cli(self, *args: str, expect: int | None = 0):  # noqa: ANN201 - click Result
        result = self.runner.invoke(app, list(args), catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}\n{result.output}"
        return result

    def adopt(self, done: Finished) -> None:
        """Start from a copy of a finished study: the SQLite file copied whole, or on Postgres
        the study copied into this test's own database (Optuna's copy_study: attributes,
        parameters, curves and states, trial numbers in the same order)."""
        if self.backend == "sqlite":
            copy_sqlite(done.db, self.db)
        else:
            optuna.copy_study(from_study_name=done.study, from_storage=f"sqlite:///{done.db}",
                              to_storage=self.url)


@dataclass(frozen=True)
class Finished:
    """A study searched (and maybe retrained) once per session, in a folder of its own."""

    study: str
    folder: Path

    @property
    def db(self) -> Path:
        return self.folder / "hpsearch.db"


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database, its WAL included (SQLite's backup API)."""
    with contextlib.closing(sqlite3.connect(src)) as a, contextlib.closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def _project(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Work:
    studies = folder / "studies"
    shutil.copytree(REPO / "studies", studies)
    for f in FIXTURE_STUDIES.glob("*.py"):
        shutil.copy(f, studies / f.name)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HPSEARCH_DATA", str(folder / "data"))
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    monkeypatch.delenv("HPSEARCH_STUDIES", raising=False)
    return Work(folder, CliRunner())


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Work:
    return _project(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """`tiny` on digits, 4 trials by 2 workers: a real run, once per session (copy it with adopt)."""
    with pytest.MonkeyPatch.context() as mp:
        work = _project(tmp_path_factory.mktemp("tiny-search"), mp)
        work.cli("run", "tiny", "--workers", "2", "--n-trials", "4", "--pruner", "none")
    return Finished("tiny", work.path)


@pytest.fixture(scope="session")
def tiny_retrained(tiny_search: Finished, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """A copy of :func:`tiny_search` after `best --retrain --seeds 2` (record, checkpoints, artifacts)."""
    with pytest.MonkeyPatch.context() as mp:
        work = _project(tmp_path_factory.mktemp("tiny-retrained"), mp)
        work.adopt(tiny_search)
        work.cli("best", "--retrain", "--seeds", "2")
    return Finished("tiny", work.path)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    if bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    cluster = PgCluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, work: Work, monkeypatch: pytest.MonkeyPatch) -> Work:
    """``work`` on each storage backend: every storage-facing test runs on SQLite and Postgres."""
    if request.param == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg")
        work.url, work.backend = cluster.create_database(), "postgres"
        monkeypatch.setenv("HPSEARCH_STORAGE", work.url)
    return work


def write_idx(folder: Path, prefix: str, n: int, seed: int) -> None:
    """Write an MNIST-format IDX pair: n 28×28 uint8 images whose class shows as a bright band."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.uint8) % 10
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c + 3:2 * c + 6, 4:24] = 255
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
    with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.tobytes())


@pytest.fixture
def fake_mnist(tmp_path: Path) -> Path:
    """A data root with a tiny MNIST: 400 train images and NO test files."""
    root = tmp_path / "fake-data"
    write_idx(root / "MNIST" / "raw", "train", 400, seed=0)
    return root


def add_mnist_test(root: Path) -> None:
    write_idx(root / "MNIST" / "raw", "t10k", 100, seed=1)


@pytest.fixture(scope="session")
def mnist_search(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """`tiny_mnist`, 3 trials on a fake MNIST that has no test files while it is searched: a real
    run, once per session. Its data root (``folder/fake-data``, test files added after the
    search) is copied with the database by :func:`searched`."""
    with pytest.MonkeyPatch.context() as mp:
        work = _project(tmp_path_factory.mktemp("mnist-search"), mp)
        root = work.path / "fake-data"
        write_idx(root / "MNIST" / "raw", "train", 400, seed=0)
        work.cli("run", "tiny_mnist", "--n-trials", "3", "--data-root", str(root), "--pruner", "none")
        add_mnist_test(root)
    return Finished("tiny_mnist", work.path)


def _searched(work: Work, done: Finished) -> tuple[Work, Path]:
    work.adopt(done)
    root = work.path / "fake-data"
    shutil.copytree(done.folder / "fake-data", root)
    return work, root


@pytest.fixture
def searched(work: Work, mnist_search: Finished) -> tuple[Work, Path]:
    """A searched `tiny_mnist` (a copy of :func:`mnist_search`) and its own data root, test files included."""
    return _searched(work, mnist_search)


@pytest.fixture
def searched_any(store: Work, mnist_search: Finished) -> tuple[Work, Path]:
    """As ``searched``, on each storage backend (the retrain record lives in the study)."""
    return _searched(store, mnist_search)


def write_cifar(root: Path, per_batch: int = 20) -> None:
    """CIFAR-10's python on-disk format: pickled dicts with 'data' (N×3072 uint8) and 'labels'."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 "labels": [i % 10 for i in range(per_batch)], "batch_label": name}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                     "horse", "ship", "truck"]}, f)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")


COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 210, 40)]


def write_images(folder: Path, n: int, colour: tuple[int, int, int], seed: int) -> None:
    """``n`` images of one class: noise over a dominant colour, alternating PNG and JPEG, in
    three sizes (one of them not square), so the loader has to convert and resize."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(20, 20), (24, 18), (31, 40)]  # (width, height)
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        pixels = np.clip(np.array(colour)[None, None] + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB")
        if i % 2:
            image.save(folder / f"img{i:03d}.jpg", quality=90)
        else:
            image.save(folder / f"img{i:03d}.png")


def write_image_folder(root: Path, classes: int = 3, train: int = 24, test: int | None = 8) -> Path:
    """``root/train/<class>/`` and ``root/test/<class>/`` (or one ``root/<class>/`` if ``test`` is None)."""
    names = ["cat", "dog", "fox", "owl"][:classes]
    for c, name in enumerate(names):
        if test is None:
            write_images(root / name, train, COLOURS[c], seed=c)
        else:
            write_images(root / "train" / name, train, COLOURS[c], seed=c)
            write_images(root / "test" / name, test, COLOURS[c], seed=100 + c)
    return root


def _searched_and_retrained(factory: pytest.TempPathFactory, study: str, n_trials: int) -> Finished:
    """``study`` searched by 1 worker (no pruning), then `best --retrain --seeds 2`, in a folder of its own."""
    with pytest.MonkeyPatch.context() as mp:
        work = _project(factory.mktemp(f"{study}-retrained"), mp)
        work.cli("run", study, "--n-trials", str(n_trials), "--pruner", "none")
        work.cli("best", "--retrain", "--seeds", "2")
    return Finished(study, work.path)


@pytest.fixture(scope="session")
def cae_retrained(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """`tiny_cae` (reconstruct, digits): 3 trials, then `best --retrain --seeds 2`, once per session."""
    return _searched_and_retrained(tmp_path_factory, "tiny_cae", 3)


@pytest.fixture(scope="session")
def unet_retrained(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """`tiny_unet` (segment, 120 generated shapes): 2 trials, then `best --retrain --seeds 2`, once per session."""
    return _searched_and_retrained(tmp_path_factory, "tiny_unet", 2)
