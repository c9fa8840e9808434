import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import add_mnist_test, write_cifar
from hpsearch.data import AUGMENTS, DataSpec, get_source, load_search_data, load_test_data, stratified_split
from hpsearch.errors import DatasetMissing, TestSplitForbidden


def looked() -> None:
    """A look that records nothing: these tests read the test split of generated files."""


def test_stratified_split_is_deterministic_and_keeps_class_balance() -> None:
    y = torch.arange(1000) % 10
    keep, held = stratified_split(y, 0.2, seed=3)
    keep2, held2 = stratified_split(y, 0.2, seed=3)
    assert torch.equal(held, held2) and torch.equal(keep, keep2)
    assert len(set(keep.tolist()) & set(held.tolist())) == 0 and len(keep) + len(held) == 1000
    assert torch.bincount(y[held]).tolist() == [20] * 10
    assert not torch.equal(held, stratified_split(y, 0.2, seed=4)[1])


def test_digits_train_and_test_are_disjoint_fixed_splits() -> None:
    src = get_source("digits")
    xtr, ytr = src.read(Path("."), "train")
    xte, yte = src.read(Path("."), "test", look=looked)
    assert len(ytr) + len(yte) == 1797 and len(yte) == pytest.approx(1797 * 0.25, abs=10)
    assert xtr.dtype == torch.uint8 and xtr.shape[1:] == (1, 8, 8)
    train_rows = {bytes(r) for r in xtr.flatten(1).numpy()}
    overlap = sum(bytes(r) in train_rows for r in xte.flatten(1).numpy())
    assert overlap < 10  # digits has a few duplicate images; the split itself is by index


def test_search_data_is_resident_uint8_and_normalised_per_batch() -> None:
    data = load_search_data(DataSpec("digits", val_fraction=0.2), Path("."))
    assert data.train.x.dtype == torch.uint8  # a quarter of float32's memory
    x = data.train.batch(slice(None))
    assert x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 0.05
    # the same numbers as normalising everything up front (what 0.2 kept resident)
    upfront = (data.train.x.float().div(255) - data.mean[None, :, None, None]) / data.std[None, :, None, None]
    assert torch.equal(x, upfront)
    assert torch.equal(data.train.batch(torch.tensor([5, 2])), upfront[[5, 2]])
    counts = torch.bincount(data.val.y)
    assert int(counts.max() - counts.min()) <= 2


def test_mnist_format_reads_one_split_without_the_other(fake_mnist: Path) -> None:
    data = load_search_data(DataSpec("mnist", val_fraction=0.25), fake_mnist)
    assert len(data.train) == 300 and len(data.val) == 100 and data.train.x.shape[1:] == (1, 28, 28)
    with pytest.raises(DatasetMissing, match=r"missing t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in .*MNIST/raw"):
        load_test_data(DataSpec("mnist"), fake_mnist, data.mean, data.std, look=looked)
    add_mnist_test(fake_mnist)
    assert len(load_test_data(DataSpec("mnist"), fake_mnist, data.mean, data.std, look=looked)) == 100


def test_cifar10_reads_the_python_batch_format(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    data = load_search_data(DataSpec("cifar10", val_fraction=0.2), tmp_path)
    assert len(data.train) + len(data.val) == 100 and data.train.x.shape[1:] == (3, 32, 32)
    assert len(load_test_data(DataSpec("cifar10"), tmp_path, data.mean, data.std, look=looked)) == 20


def test_missing_files_offline_say_which_files_and_where(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissing) as err:
        load_search_data(DataSpec("fashion_mnist"), tmp_path / "empty")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "empty" / "FashionMNIST" / "raw") in msg
    assert "--data-root" in msg


def test_every_test_read_is_counted_and_a_sealed_process_reads_none(tmp_path: Path) -> None:
    """The gate is in the sources' read, so no loader (or user code calling one) goes around it."""
    spec = DataSpec("digits")
    data = load_search_data(spec, Path("."))
    with pytest.raises(TestSplitForbidden, match="only with a look that records it"):
        load_test_data(spec, Path("."), data.mean, data.std)
    with pytest.raises(TestSplitForbidden, match="only with a look"):
        get_source("digits").read(Path("."), "test")
    looks: list[int] = []
    assert len(load_test_data(spec, Path("."), data.mean, data.std, look=lambda: looks.append(1))) > 0
    assert looks == [1]  # counted before the read, once per read
    # a search worker seals itself before importing the study module; processes it starts are sealed too
    script = tmp_path / "sealed.py"
    script.write_text(textwrap.dedent("""
        import subprocess, sys
        from pathlib import Path
        from hpsearch.data import get_source, seal

        def attempt():
            try:
                get_source("digits").read(Path("."), "test", look=lambda: None)
                print("read")
            except Exception as e:
                print(type(e).__name__)

        if sys.argv[1:] == ["child"]:
            attempt()
        else:
            seal()
            attempt()
            subprocess.run([sys.executable, __file__, "child"], check=True)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["TestSplitForbidden", "TestSplitForbidden"]


@pytest.mark.parametrize("name", [n for n in AUGMENTS if n != "none"])
def test_batch_augmentations_keep_shape_and_follow_the_seed(name: str) -> None:
    x = torch.randn(16, 3, 32, 32)
    fn = AUGMENTS[name]
    a = fn(x, torch.Generator().manual_seed(0))
    b = fn(x, torch.Generator().manual_seed(0))
    c = fn(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


def test_pad_crop_shifts_each_image_independently() -> None:
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = AUGMENTS["pad_crop"](x, torch.Generator().manual_seed(0))
    positions = {tuple(torch.nonzero(img[0])[0].tolist()) for img in out if img.sum() > 0}
    assert len(positions) > 3
