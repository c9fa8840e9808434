"""Your own data: image folders, EMNIST and torchvision sets in their on-disk formats, arrays.

Every format is written here in its exact layout (EMNIST and KMNIST files are not on these
machines): IDX files with EMNIST's transposed images, PNG and JPEG folders of mixed sizes.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from conftest import Work, write_image_folder, write_images
from hpsearch import datasets
from hpsearch.data import DataSpec, load_search_data, load_test_data, prepare
from hpsearch.data._folder import ImageFolder
from hpsearch.errors import DatasetError, DatasetMissing, TestSplitForbidden
from hpsearch.store.records import RETRAIN, SETTINGS, study_get
from hpsearch.study.declaration import StoredSettings, Study


def looked() -> None:
    """A look that records nothing: these tests read test splits of files they wrote."""


class Decodes:
    """Counts the images :class:`ImageFolder` decodes (the cache's whole point is zero)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.images = 0
        real = ImageFolder._decode_all

        def counting(source: ImageFolder, paths: list[Path]) -> torch.Tensor:
            self.images += len(paths)
            return real(source, paths)

        monkeypatch.setattr(ImageFolder, "_decode_all", counting)


def test_image_folder_resizes_png_and_jpeg_once_and_every_later_read_uses_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_image_folder(tmp_path / "pets")
    decodes = Decodes(monkeypatch)
    spec = DataSpec(datasets.image_folder(root, size=(12, 16)), val_fraction=0.25)
    assert spec.info.classes == ("cat", "dog", "fox") and spec.info.shape == (3, 12, 16)

    digest = prepare(spec, tmp_path / "data-root")
    assert decodes.images == 72  # the training split, once
    cache = sorted((root / ".hpsearch-cache").glob("*-train.pt"))
    assert len(cache) == 1
    built = cache[0].stat().st_mtime_ns

    fresh = DataSpec(datasets.image_folder(root, size=(12, 16)), val_fraction=0.25)  # a new process's object
    data = load_search_data(fresh, tmp_path / "data-root")
    assert decodes.images == 72 and cache[0].stat().st_mtime_ns == built
    assert prepare(fresh, tmp_path / "data-root") == digest and decodes.images == 72
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape[1:] == (3, 12, 16)
    assert len(data.train) + len(data.val) == 72
    assert torch.bincount(data.val.y).tolist() == [6, 6, 6]  # stratified
    # each class is a dominant colour: its mean pixel says which channel is brightest
    red = data.train.x[data.train.y == 0].float().mean(dim=(0, 2, 3))
    assert int(red.argmax()) == 0

    test = load_test_data(fresh, tmp_path / "data-root", data.mean, data.std, look=looked)
    assert len(test) == 24 and decodes.images == 72 + 24  # the test folder: decoded at its first look only
    load_test_data(fresh, tmp_path / "data-root", data.mean, data.std, look=looked)
    assert decodes.images == 96


def test_one_folder_gets_a_fixed_stratified_test_cut_and_grayscale(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "one", classes=4, train=20, test=None)
    ds = datasets.image_folder(root, size=10, channels=1, test_fraction=0.25, split_seed=3)
    spec = DataSpec(ds)
    xtr, ytr = ds.read(tmp_path, "train")
    xte, yte = ds.read(tmp_path, "test", look=looked)
    assert xtr.shape[1:] == (1, 10, 10) and len(ytr) == 60 and len(yte) == 20
    assert torch.bincount(yte).tolist() == [5, 5, 5, 5]
    again = datasets.image_folder(root, size=10, channels=1, test_fraction=0.25, split_seed=3)
    assert torch.equal(again.read(tmp_path, "test", look=looked)[1], yte)
    other = datasets.image_folder(root, size=10, channels=1, test_fraction=0.25, split_seed=4)
    assert not torch.equal(other.read(tmp_path, "test", look=looked)[0], xte)  # the seed picks the cut
    assert spec.info.augmentations[0] == "none" and "color_jitter" not in spec.info.augmentations


def test_images_of_one_size_need_no_size_and_mixed_sizes_say_to_pass_one(tmp_path: Path) -> None:
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "same" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (7, 5), (i * 40, 0 if c == "a" else 90, 0)).save(tmp_path / "same" / c / f"{i}.png")
    same = datasets.image_folder(tmp_path / "same", test_fraction=0.5)
    assert same.info.shape == (3, 5, 7)  # non-square kept as it is
    assert same.read(tmp_path, "train")[0].shape[1:] == (3, 5, 7)
    mixed = datasets.image_folder(write_image_folder(tmp_path / "mixed", test=None), test_fraction=0.2)
    with pytest.raises(DatasetError, match=r"is \d+×\d+ but the first image is .*pass size=\(H, W\)"):
        mixed.read(tmp_path, "train")


@pytest.mark.parametrize("case", ["missing", "no_train", "empty_class", "one_class", "unreadable",
                                  "test_class_unknown"])
def test_image_folder_problems_are_one_line_naming_the_path(tmp_path: Path, case: str) -> None:
    root = tmp_path / "imgs"
    if case != "missing":
        write_image_folder(root, classes=2, train=3, test=2)
    if case == "no_train":
        (root / "train").rename(root / "training")
    elif case == "empty_class":
        (root / "train" / "emu").mkdir()
    elif case == "one_class":
        import shutil
        shutil.rmtree(root / "train" / "dog")
    elif case == "unreadable":
        (root / "train" / "cat" / "broken.png").write_bytes(b"not a png at all")
    elif case == "test_class_unknown":
        write_images(root / "test" / "yak", 2, (0, 0, 0), seed=9)
    expected = {
        "missing": (DatasetMissing, r"image folder .*imgs does not exist"),
        "no_train": (DatasetMissing, r"no train/ folder for the training images; expected ROOT/train/<class>"),
        "empty_class": (DatasetError, r"train/emu: class folder with no images"),
        "one_class": (DatasetError, r"at least 2 class folders, found only 'cat'"),
        "unreadable": (DatasetError, r"broken\.png: not a readable image"),
        "test_class_unknown": (DatasetError, r"class folder\(s\) yak have no counterpart"),
    }[case]
    with pytest.raises(expected[0], match=expected[1]) as err:
        prepare(DataSpec(datasets.image_folder(root, size=8)), tmp_path)
    assert "\n" not in str(err.value)


def test_a_read_only_data_folder_caches_under_the_data_root(tmp_path: Path) -> None:
    """A shared, read-only dataset mount: the cache goes under the data root instead."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) for a read-only tmpfs")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        root = write_image_folder(mnt / "ro", classes=2, train=3, test=2)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        x, _ = datasets.image_folder(root, size=8).read(tmp_path / "dr", "train")
        assert len(x) == 6 and list((tmp_path / "dr" / "cache").glob("ro-*/*-train.pt"))
        assert not (root / ".hpsearch-cache").exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def write_emnist(root: Path, split: str, part: str, labels: list[int]) -> np.ndarray:
    """EMNIST's IDX pair, images stored transposed as NIST ships them. Returns the upright images."""
    upright = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        upright[i, 3 + (c % 20), 2:26] = 255  # a horizontal bar whose row encodes the class
    raw = root / "EMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    stem = raw / f"emnist-{split}-{part}"
    stored = upright.transpose(0, 2, 1).copy()
    Path(f"{stem}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, len(labels), 28, 28) + stored.tobytes())
    Path(f"{stem}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, len(labels)) + bytes(labels))
    return upright


def test_emnist_balanced_reads_torchvisions_layout_upright_with_47_classes(tmp_path: Path) -> None:
    labels = [i % 47 for i in range(94)]
    upright = write_emnist(tmp_path, "balanced", "train", labels)
    write_emnist(tmp_path, "balanced", "test", labels[:47])
    spec = DataSpec(datasets.emnist("balanced"), val_fraction=0.5)
    assert spec.info.num_classes == 47 and spec.info.classes[:11] == tuple("0123456789A")
    assert spec.info.augmentations == ("none", "pad_crop", "rotation")  # no flips for letters
    x, y = spec.source.read(tmp_path, "train")
    assert x.shape == (94, 1, 28, 28) and y.tolist() == labels
    assert np.array_equal(x[:, 0].numpy(), upright)  # the orientation fix
    data = load_search_data(spec, tmp_path)
    assert len(load_test_data(spec, tmp_path, data.mean, data.std, look=looked)) == 47


def test_emnist_letters_labels_start_at_a(tmp_path: Path) -> None:
    write_emnist(tmp_path, "letters", "train", [1, 2, 26])
    x, y = datasets.emnist("letters").read(tmp_path, "train")
    assert y.tolist() == [0, 1, 25] and datasets.emnist("letters").info.classes[25] == "z"


def test_emnist_offline_says_which_files_go_where(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissing) as err:
        prepare(DataSpec(datasets.emnist("balanced")), tmp_path / "nothing")
    msg = str(err.value)
    assert "emnist-balanced-train-images-idx3-ubyte" in msg and str(tmp_path / "nothing" / "EMNIST" / "raw") in msg
    assert "torchvision.datasets.EMNIST(ROOT, split='balanced', download=True)" in msg and "--data-root" in msg


def test_torchvision_kmnist_reads_its_idx_files_through_torchvision(tmp_path: Path) -> None:
    from conftest import write_idx

    raw = tmp_path / "KMNIST" / "raw"
    write_idx(raw, "train", 60, seed=0)
    write_idx(raw, "t10k", 20, seed=1)
    ds = datasets.torchvision("KMNIST", tmp_path)
    spec = DataSpec(ds, val_fraction=0.25)
    assert spec.info.shape == (1, 28, 28) and len(spec.info.classes) == 10 and spec.info.classes[0].startswith("o")
    digest = prepare(spec, tmp_path / "elsewhere")
    assert len(digest) == 64 and list((tmp_path / "KMNIST" / ".hpsearch-cache").glob("*-train.pt"))
    data = load_search_data(spec, tmp_path / "elsewhere")
    assert len(data.train) + len(data.val) == 60 and data.train.x.dtype == torch.uint8
    assert len(load_test_data(spec, tmp_path, data.mean, data.std, look=looked)) == 20


def test_torchvision_set_missing_or_misnamed_is_one_line(tmp_path: Path) -> None:
    # offline: torchvision's download fails (after making the folder), then its class says not found
    with pytest.raises(DatasetMissing, match=r"KMNIST: not found under .*KMNIST .*download=True\) fetches"):
        prepare(DataSpec(datasets.torchvision("KMNIST", tmp_path)), tmp_path)
    with pytest.raises(ValueError, match="torchvision.datasets has no dataset 'Kmnist'"):
        datasets.torchvision("Kmnist", tmp_path).read(tmp_path, "train")


def arrays_nhwc() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 6, 5, 3), dtype=np.uint8)  # N×H×W×C, as numpy users hold images
    y = np.arange(40) % 4
    return x[:30], y[:30], x[30:], y[30:]


def arrays_float() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {"train": (torch.rand(20, 8, 8, generator=g), torch.arange(20) % 2),
            "test": (torch.rand(6, 8, 8, generator=g), torch.arange(6) % 2)}


def bad_labels() -> tuple[np.ndarray, ...]:
    return np.zeros((4, 8, 8), np.uint8), np.array([0.5, 1, 0, 1]), np.zeros((2, 8, 8), np.uint8), np.array([0, 1])


def test_tensors_take_numpy_or_torch_in_any_layout(tmp_path: Path) -> None:
    ds = datasets.tensors(arrays_nhwc, classes=("a", "b", "c", "d"))
    assert ds.info.shape == (3, 6, 5) and ds.info.classes == ("a", "b", "c", "d") and ds.info.name == "arrays_nhwc"
    x, y = ds.read(tmp_path, "train")
    assert x.shape == (30, 3, 6, 5) and x.dtype == torch.uint8
    assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), arrays_nhwc()[0])
    floats = DataSpec(datasets.tensors(arrays_float), val_fraction=0.25)
    data = load_search_data(floats, tmp_path)
    assert data.train.x.dtype == torch.float32 and floats.info.classes == ("0", "1")
    assert abs(float(data.train.batch(slice(None)).mean())) < 1e-5  # floats are not divided by 255
    with pytest.raises(DatasetError, match=r"train labels must be 4 integers"):
        datasets.tensors(bad_labels).info  # noqa: B018
    with pytest.raises(ValueError, match="top level of a module"):
        datasets.tensors(lambda: arrays_nhwc())


def test_the_settings_store_each_dataset_and_rebuild_it_without_reading_a_file(tmp_path: Path) -> None:
    objects = [datasets.image_folder(tmp_path / "x", size=(8, 12), channels=1, test_fraction=0.3, split_seed=2),
               datasets.emnist("letters"), datasets.torchvision("SVHN", tmp_path, size=16), datasets.tensors(arrays_nhwc)]
    for ds in objects:
        settings = StoredSettings(DataSpec(ds, 0.1, 1, None), 3, "val_top1", 0, "m", data_hash="ab" * 32)
        stored = json.loads(json.dumps(settings.to_dict()))
        back = StoredSettings.from_dict(stored)
        assert back == settings and back.data.stored() == ds.spec()
    assert StoredSettings.from_dict({**settings.to_dict(), "dataset": "digits"}).data.dataset == "digits"
    with pytest.raises(ValueError, match="kind 'hdf5' is not known"):
        StoredSettings.from_dict({**settings.to_dict(), "dataset": {"kind": "hdf5"}})


def test_study_accepts_a_dataset_object_and_names_the_choices_for_an_unknown_name(tmp_path: Path) -> None:
    Study(dataset=datasets.image_folder(tmp_path), space=lambda t: None)  # no file is touched here
    with pytest.raises(ValueError, match=r"unknown dataset 'shapes'; built-in: digits.*hpsearch.data.datasets"):
        Study(dataset="shapes", space=lambda t: None)


def test_a_search_worker_cannot_read_a_new_sources_test_split(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", classes=2, train=3, test=2)
    code = ("from hpsearch import datasets; from hpsearch.data import seal; from pathlib import Path\n"
            f"seal(); datasets.image_folder({str(root)!r}, size=8).read(Path('.'), 'test', look=lambda: None)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0 and TestSplitForbidden.__name__ in r.stderr


@pytest.mark.slow
def test_an_image_folder_study_runs_retrains_reports_and_serves_from_one_decode(
        work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard_process import Dashboard, api

    folder = write_image_folder(work.path / "pets")
    monkeypatch.setenv("HPSEARCH_FOLDER", str(folder))
    decodes = Decodes(monkeypatch)  # this process is the supervisor: it decodes before any worker starts

    work.cli("run", "tiny_folder", "--workers", "2", "--n-trials", "2")
    assert decodes.images == 72
    cache = list((folder / ".hpsearch-cache").glob("*-train.pt"))
    assert len(cache) == 1
    built = cache[0].stat().st_mtime_ns
    work.cli("run", "tiny_folder", "--workers", "2", "--n-trials", "3")  # a second start: the cache, not the images
    assert decodes.images == 72 and cache[0].stat().st_mtime_ns == built
    assert list((folder / ".hpsearch-cache").glob("*-train.pt")) == cache
    study = optuna.load_study(study_name="tiny_folder", storage=work.url)
    assert study_get(study, SETTINGS)["dataset"]["kind"] == "image_folder"
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 3

    shown = work.cli("best", "tiny_folder", "--retrain", "--seeds", "2").output
    assert "test look 1" in shown and decodes.images == 72 + 24  # the test folder, at its look
    rec = study_get(optuna.load_study(study_name="tiny_folder", storage=work.url), RETRAIN)
    assert rec["classes"] == ["cat", "dog", "fox"] and len(rec["runs"][0]["test_per_class_top1"]) == 3
    work.cli("report", "tiny_folder")
    page = (work.path / "tiny_folder-report.html").read_text()
    assert "Per-class test accuracy" in page and "Dataset pets" in page

    dash = Dashboard(work)
    try:
        assert [s["study_name"] for s in dash.studies] == ["tiny_folder"]
        detail = api(dash.port, f"/api/studies/{dash.studies[0]['study_id']}")
        assert len(detail["trials"]) == 3 and "Retrained result" in detail["note"]["body"]
    finally:
        dash.stop()

    write_images(folder / "train" / "cat" / "more", 1, (0, 0, 0), seed=7)  # the folder changes
    refused = work.cli("run", "tiny_folder", "--n-trials", "4", expect=1).output
    assert "the data's files changed since study 'tiny_folder' was created" in refused
    assert "--allow-data-change" in refused and "Traceback" not in refused
    assert len(optuna.load_study(study_name="tiny_folder", storage=work.url).trials) == 3
    assert "files changed" in work.cli("best", "tiny_folder", "--retrain", "--force", expect=1).output
    went = work.cli("run", "tiny_folder", "--n-trials", "4", "--allow-data-change")
    assert "going on: --allow-data-change" in went.output
    assert len(optuna.load_study(study_name="tiny_folder", storage=work.url).trials) == 4


@pytest.mark.slow
def test_a_study_on_arrays_from_a_function_retrains_in_a_fresh_process(work: Work) -> None:
    work.cli("run", "tiny_arrays", "--n-trials", "1")
    r = subprocess.run([sys.executable, "-m", "hpsearch", "best", "tiny_arrays", "--retrain", "--seeds", "1"],
                       cwd=work.path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "loaded digit_arrays: " in r.stdout and "test look 1" in r.stdout
    rec = study_get(optuna.load_study(study_name="tiny_arrays", storage=work.url), RETRAIN)
    assert len(rec["runs"]) == 1 and rec["runs"][0]["test_top1"] > 0.5  # 397 held-out digits


def test_the_shipped_data_studies_load_and_probe(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpsearch.study import discover
    from hpsearch.study.fingerprint import fingerprint

    monkeypatch.setenv("HPSEARCH_FOLDER", str(write_image_folder(work.path / "imgs", train=4, test=2)))
    write_emnist(work.path / "data", "balanced", "train", [i % 47 for i in range(94)])
    for name in ("folder_example", "emnist_grid"):
        loaded = discover.load(name)
        assert discover.probe(loaded, fingerprint)["source_sha256"] == loaded.source_sha256


def test_a_missing_folder_stops_run_with_one_line_and_no_study(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_FOLDER", str(work.path / "nowhere"))
    out = work.cli("run", "folder_example", expect=1).output
    assert out.strip().count("\n") == 0 and "nowhere does not exist" in out and "Traceback" not in out
    assert not work.db.exists() or optuna.get_all_study_names(work.url) == []


def test_a_link_back_up_the_tree_is_walked_once(tmp_path: Path) -> None:
    """`a/loop -> ..` turned 10 images into 410 rows (issue 34, attack 1): each real folder and
    file is listed once, however many links lead to it."""
    root = write_image_folder(tmp_path / "pets", classes=2, train=5, test=2)
    (root / "train" / "cat" / "loop").symlink_to("..")
    (root / "train" / "dog" / "again").symlink_to(root / "train" / "dog")
    ds = datasets.image_folder(root, size=8)
    assert len(ds.files(root, "train")) == 10 and len(ds.files(root, "test")) == 4
    x, y = ds.read(tmp_path / "dr", "train")
    assert len(x) == 10 and torch.bincount(y).tolist() == [5, 5]


def test_test_images_reached_from_training_are_refused_in_one_line(tmp_path: Path) -> None:
    """A link from a training class folder to the test split put the whole test cut into training
    without a word (issue 34, attack 1); so does a copied file. Both are refused before any read."""
    root = write_image_folder(tmp_path / "pets", classes=2, train=5, test=2)
    (root / "train" / "cat" / "borrowed").symlink_to(root / "test" / "cat")
    with pytest.raises(DatasetError, match=r"2 image\(s\) stored more than once .*test/cat/.* = train/cat/borrowed/"
                                           r".*the test score would be partly a score on training images"):
        prepare(DataSpec(datasets.image_folder(root, size=8)), tmp_path / "dr")
    (root / "train" / "cat" / "borrowed").unlink()
    prepare(DataSpec(datasets.image_folder(root, size=8)), tmp_path / "dr")  # disjoint again: accepted
    first = sorted((root / "train" / "dog").iterdir())[0]
    shutil.copy(first, root / "train" / "dog" / "copy.png")
    with pytest.raises(DatasetError, match=r"1 image\(s\) .*train/dog/copy.png = train/dog/.*the validation split"):
        prepare(DataSpec(datasets.image_folder(root, size=8)), tmp_path / "dr")


def test_a_single_folder_cut_into_train_and_test_refuses_a_duplicate(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "one", classes=2, train=6, test=None)
    first = sorted((root / "cat").iterdir())[0]
    shutil.copy(first, root / "cat" / "twin.png")
    with pytest.raises(DatasetError, match="test score would be partly"):
        datasets.image_folder(root, size=8, test_fraction=0.25).content_hash(tmp_path / "dr")


def test_a_tampered_tensor_cache_is_rebuilt_never_trained_on(tmp_path: Path) -> None:
    """Flipped labels in the decoded cache trained a fresh process while the data check passed:
    the content hash is of the source files (issue 34, attack 4). The study records a digest of the
    decoded training split; a cache that does not match it is dropped and decoded again."""
    from hpsearch.data import read_checked

    root = write_image_folder(tmp_path / "pets", classes=2, train=6, test=2)
    spec = DataSpec(datasets.image_folder(root, size=8), val_fraction=0.25)
    _, mapped, recorded = read_checked(spec, tmp_path / "dr")
    y = mapped.clone()  # the cache is memory-mapped: rewriting the file in place changes `mapped` too
    (cache,) = (root / ".hpsearch-cache").glob("*-train.pt")
    part = torch.load(cache, weights_only=True)
    part["y"] = 1 - part["y"]  # every label flipped, the file otherwise as built
    torch.save(part, cache)

    fresh = DataSpec(datasets.image_folder(root, size=8), val_fraction=0.25)  # a new process's object
    assert torch.equal(read_checked(fresh, tmp_path / "dr")[1], 1 - y)  # unchecked, it would train on them
    said: list[str] = []
    data = load_search_data(fresh, tmp_path / "dr", recorded=recorded, say=said.append)
    assert len(said) == 1 and "does not match what the study recorded" in said[0], said
    assert sorted(torch.cat([data.train.y, data.val.y]).tolist()) == sorted(y.tolist())
    assert torch.equal(torch.load(cache, weights_only=True)["y"], y)  # the cache itself is whole again
    assert read_checked(fresh, tmp_path / "dr", recorded)[2] == recorded


def test_a_forged_hash_memo_cannot_vouch_for_changed_files(tmp_path: Path) -> None:
    """A memo file naming the old content for changed files was believed (issue 34, attack 4):
    once the cache is in doubt, the files themselves are hashed, and changed ones are refused."""
    from PIL import Image

    from hpsearch.data import read_checked

    root = write_image_folder(tmp_path / "pets", classes=2, train=6, test=2)
    ds = datasets.image_folder(root, size=8)
    spec = DataSpec(ds, val_fraction=0.25)
    _, _, recorded = read_checked(spec, tmp_path / "dr")
    files_hash = ds.content_hash(tmp_path / "dr")
    victim = sorted((root / "train" / "cat").iterdir())[0]
    Image.new("RGB", (8, 8), (0, 255, 0)).save(victim)  # a training image changed
    fresh = datasets.image_folder(root, size=8)
    changed = fresh.content_hash(tmp_path / "dr")
    assert changed != files_hash
    (memo,) = [m for m in (root / ".hpsearch-cache").glob("hash-*") if json.loads(m.read_text())["digest"] == changed]
    memo.write_text(json.dumps({**json.loads(memo.read_text()), "digest": files_hash}))  # forged: "nothing changed"
    assert datasets.image_folder(root, size=8).content_hash(tmp_path / "dr") == files_hash  # believed, as a memo is
    (cache,) = (root / ".hpsearch-cache").glob("*-train.pt")
    part = torch.load(cache, weights_only=True)
    part["y"] = 1 - part["y"]
    torch.save(part, cache)
    with pytest.raises(DatasetError, match="the data's files changed since the study was created .*hash memo"):
        load_search_data(DataSpec(datasets.image_folder(root, size=8), val_fraction=0.25), tmp_path / "dr",
                         recorded=recorded, files_hash=files_hash)


def test_an_image_that_would_decode_to_gigabytes_is_refused_before_decoding(tmp_path: Path) -> None:
    """A small PNG declaring 81 megapixels decoded to ~1 GB (issue 34, attack 10): the size is read
    from the header and refused first."""
    import zlib

    root = write_image_folder(tmp_path / "pets", classes=2, train=3, test=1)
    w = h = 9000  # 81 megapixels, grayscale: a small file of zero rows
    raw = zlib.compress((b"\0" + bytes(w)) * h, 1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = root / "train" / "cat" / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    assert bomb.stat().st_size < 400_000
    with pytest.raises(DatasetError, match=r"bomb.png is 9000×9000 pixels \(81 megapixels.*are refused"):
        datasets.image_folder(root, size=8).read(tmp_path / "dr", "train")
