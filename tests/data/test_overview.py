"""`hpsearch data`: the training split as the search cuts it, one sample per class, counts per
class — from a data root that has no test files at all, so reading them would fail."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from PIL import Image

from conftest import Work
from hpsearch.data import DataSpec
from hpsearch.store.records import SETTINGS
from hpsearch.study.declaration import StoredSettings


def test_data_shows_the_split_the_search_uses_and_never_reads_the_test_split(work: Work, fake_mnist: Path) -> None:
    study = optuna.create_study(study_name="seen", storage=work.url, direction="maximize")
    spec = DataSpec("mnist", val_fraction=0.25)
    study.set_user_attr(SETTINGS, StoredSettings(data=spec, max_epochs=1, metric="val_top1", seed=0,
                                                 module="seen").to_dict())
    shown = json.loads(work.cli("data", "--json", "--out", "pngs", "--data-root", str(fake_mnist)).stdout)
    assert shown["dataset"] and shown["shape"] == [1, 28, 28] and len(shown["classes"]) == 10
    assert shown["train_images"] + shown["val_images"] == 400 and shown["val_images"] == 100  # a quarter, stratified
    assert sum(shown["train"].values()) == shown["train_images"] and sum(shown["val"].values()) == 100
    assert 0 < shown["mean"][0] < 1 and 0 < shown["std"][0] < 1 and shown["test"].startswith("not read")
    samples, classes = (Image.open(p) for p in shown["png"])
    assert samples.format == classes.format == "PNG" and samples.size[0] > samples.size[1] > 0
    text = work.cli("data", "--data-root", str(fake_mnist)).output
    assert "300 train / 100 validation" in text and "the test split is not read here" in text
    assert not list((fake_mnist / "MNIST" / "raw").glob("t10k*"))  # there was nothing to read: it did not try
