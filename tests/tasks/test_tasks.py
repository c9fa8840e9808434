"""Tasks: each task's metrics against hand-computed values, the new data and models, the errors,
and reconstruct / segment / encoder transfer end to end through real runs and retrains."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from conftest import Finished, Work, write_idx
from hpsearch import CAE, OptimConfig, Study, TrialConfig, UNet, datasets, load_checkpoint, tasks
from hpsearch.data import Tensors
from hpsearch.errors import InfeasibleModel, TestSplitForbidden
from hpsearch.models import build
from hpsearch.store.records import RETRAIN, SETTINGS, config_of, study_get
from hpsearch.study.declaration import StoredSettings
from hpsearch.tasks._classify import mistakes as classify_mistakes
from hpsearch.tasks._reconstruct import per_image as recon_per_image
from hpsearch.tasks._segment import per_image as seg_per_image
from hpsearch.views.publish import note_markdown


class Shift(nn.Module):
    """Returns its input plus a constant (in normalised units): a known reconstruction error."""

    def __init__(self, delta: float) -> None:
        super().__init__()
        self.delta = delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.delta


class Info:
    def __init__(self, shape: tuple[int, int, int], classes: tuple[str, ...]) -> None:
        self.shape, self.classes, self.num_classes = shape, classes, len(classes)


# -- metrics against hand-computed values ------------------------------------------------------

def test_reconstruct_metrics_match_hand_computed_values() -> None:
    target = torch.full((2, 1, 8, 8), 0.5)
    pred = target.clone()
    pred[0] += 0.1  # image 0: every pixel off by 0.1 → MSE 0.01, PSNR 20 dB
    m = recon_per_image(pred, target)
    assert m["mse"].tolist() == pytest.approx([0.01, 0.0])
    assert m["psnr"][0].item() == pytest.approx(20.0, abs=1e-4)
    assert m["psnr"][1].item() == 100.0  # a perfect image: capped, not inf (JSON has no inf)
    assert m["ssim"][1].item() == pytest.approx(1.0)

    # evaluate works on pixels: a shift of 0.5 normalised units with std 0.2 is 0.1 in pixels
    x = torch.full((3, 1, 8, 8), 0.4)
    data = Tensors(x, torch.zeros(3, dtype=torch.long), torch.tensor([0.3]), torch.tensor([0.2]))
    got = tasks.reconstruct().evaluate(Shift(0.5), data, Info((1, 8, 8), ("0",)))
    assert got["mse"] == pytest.approx(0.01, rel=1e-5) and got["loss"] == pytest.approx(0.01, rel=1e-5)
    assert got["psnr"] == pytest.approx(20.0, abs=1e-3)
    l1 = tasks.reconstruct(loss="l1").evaluate(Shift(0.5), data, Info((1, 8, 8), ("0",)))
    assert l1["loss"] == pytest.approx(0.1, rel=1e-5) and l1["mse"] == pytest.approx(0.01, rel=1e-5)


def test_segment_metrics_match_hand_computed_values() -> None:
    target = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]]])
    pred = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 1]]])
    m = seg_per_image(pred, target, 2)
    # image 0: pixels right 2/4; foreground tp 1, fp 1, fn 1 → F1 2·1/(2+1+1) = 0.5, IoU 1/3
    # image 1: no foreground anywhere → perfect; image 2: nothing right → F1 0, IoU 0
    assert m["pixel_acc"].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert m["f1"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert m["iou"].tolist() == pytest.approx([1 / 3, 1.0, 0.0])


def test_segment_evaluate_scores_argmax_masks_and_cross_entropy() -> None:
    masks = torch.tensor([[[1, 1], [0, 0]]], dtype=torch.uint8)

    class Fixed(nn.Module):  # scores background everywhere except the top-left pixel
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = torch.zeros(len(x), 2, 2, 2)
            s[:, 0] = 1.0
            s[:, :, 0, 0] = torch.tensor([0.0, 1.0])
            return s

    data = Tensors(torch.zeros(1, 1, 2, 2), masks, torch.zeros(1), torch.ones(1))
    got = tasks.segment().evaluate(Fixed(), data, Info((1, 2, 2), ("background", "shape")))
    ce_right, ce_wrong = math.log(1 + math.exp(-1)), math.log(1 + math.exp(1))
    assert got["loss"] == pytest.approx((3 * ce_right + ce_wrong) / 4, rel=1e-5)
    assert got["pixel_acc"] == pytest.approx(0.75) and got["f1"] == pytest.approx(2 / 3)
    assert got["iou"] == pytest.approx(0.5)


def test_classify_metrics_are_the_old_evaluate() -> None:
    x = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.5, 0.4], [0.2, 0.3, 0.5]]).view(3, 1, 1, 3)
    data = Tensors(x, torch.tensor([0, 2, 0]), torch.zeros(1), torch.ones(1))
    got = tasks.classify().evaluate(nn.Flatten(), data, Info((1, 1, 3), ("a", "b", "c")))
    expected = torch.nn.functional.cross_entropy(x.view(3, 3), torch.tensor([0, 2, 0])).item()
    assert got == pytest.approx({"loss": expected, "top1": 1 / 3, "topk": None})


class Fixed(nn.Module):
    """A classifier whose answers are given: image i (first pixel 10·i of 255) is predicted as ``preds[i]``."""

    def __init__(self, preds: list[int], classes: int) -> None:
        super().__init__()
        self.table = torch.nn.functional.one_hot(torch.tensor(preds), classes).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[(x[:, 0, 0, 0] * 25.5).round().long()]


def test_classify_keeps_each_seeds_confusion_and_the_first_models_mistakes_most_missed_first() -> None:
    """Two 'seeds' with known answers: per-seed matrices sum to the test set, the sum is what 0.3
    stored, and the kept mistakes are exactly the first model's, the one both missed first."""
    y = torch.tensor([0, 1, 2, 0, 1])
    x = (10 * torch.arange(5, dtype=torch.uint8)).view(5, 1, 1, 1).expand(5, 1, 2, 2).contiguous()
    test = Tensors(x, y, torch.zeros(1), torch.ones(1))
    info = Info((1, 2, 2), ("a", "b", "c"))
    task = tasks.classify()
    first = task.test_model(Fixed([0, 2, 2, 1, 1], 3), test, info, 0)   # wrong at 1 and 3
    second = task.test_model(Fixed([1, 2, 2, 0, 1], 3), test, info, 1)  # wrong at 0 and 1
    rec = task.test_record([first, second], test, info)
    assert [sum(map(sum, m)) for m in rec["confusion_per_seed"]] == [5, 5]
    assert rec["confusion"] == (torch.tensor(rec["confusion_per_seed"]).sum(0)).tolist()
    kept = rec["mistakes"]
    assert kept["indices"] == [1, 3] and kept["total"] == 2 and kept["models"] == 2  # index 1: both missed it
    assert kept["labels"] == [1, 0] and kept["predicted"] == [2, 1] and kept["wrong_in"] == [2, 1]
    pixels = np.frombuffer(base64.b64decode(kept["pixels"]), dtype=np.uint8).reshape(kept["shape"])
    assert kept["shape"] == [2, 1, 2, 2] and pixels[:, 0, 0, 0].tolist() == [10, 30]  # images 1 and 3
    assert classify_mistakes([first, second], test, keep=1)["indices"] == [1]


# -- settings, errors --------------------------------------------------------------------------

def _space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(model=CAE(depth=1, filters=4, latent=8), optim=OptimConfig(name="adam"))


def test_the_task_is_stored_and_old_settings_open_as_classify() -> None:
    study = Study(dataset="digits", space=_space, task=tasks.reconstruct(loss="l1"))
    assert study.metric == "val_psnr" and study.direction == "maximize"
    settings = StoredSettings.of(study, 0, "m")
    again = StoredSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert again.task == tasks.reconstruct(loss="l1") and again.directions == ["maximize"]
    old = {k: v for k, v in settings.to_dict().items() if k != "task"} | {"metric": "val_top1"}
    assert StoredSettings.from_dict(old).task == tasks.classify()
    assert Study(dataset="digits", space=_space, task=tasks.reconstruct(), metric="val_mse").direction == "minimize"
    assert Study(dataset="digits", space=_space).metric == "val_top1"


@pytest.mark.parametrize(("kw", "message"), [
    ({"dataset": "digits", "task": tasks.reconstruct(), "metric": "val_top1"},
     "metric 'val_top1' is not a reconstruct metric; use one of val_loss, val_mse, val_psnr, val_ssim"),
    ({"dataset": "digits", "task": tasks.segment()},
     "the segment task needs a dataset with masks (datasets.shapes(...) or datasets.segmentation_folder(...)); "
     "digits has class labels only"),
    ({"dataset": "digits", "task": "segment"}, "task must come from hpsearch.tasks"),
])
def test_bad_task_settings_are_one_line(kw: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        Study(space=_space, **kw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_cae_that_cannot_come_back_to_the_image_size_says_why() -> None:
    with pytest.raises(InfeasibleModel, match=r"^cae depth 3 halves the image 3 times, so its 28×28 size must be "
                                              r"divisible by 8; use depth <= 2 or resize the images$"):
        build(CAE(depth=3), Info((1, 28, 28), tuple("0123456789")))
    with pytest.raises(ValueError, match="upsampling must be one of transposed, nearest, bilinear"):
        UNet(upsampling="cubic")  # type: ignore[arg-type]


def test_a_model_the_task_cannot_score_is_one_line_before_any_trial(work: Work) -> None:
    (work.path / "studies" / "cae_classify.py").write_text(
        "from hpsearch import CAE, Study, TrialConfig\n"
        "study = Study(dataset='digits', space=lambda t: TrialConfig(model=CAE(depth=1, latent=8)))\n")
    r = work.cli("run", "cae_classify", "--n-trials", "1", expect=1)
    assert "the classify task needs class scores" in r.output and len(r.output.strip().splitlines()) == 1
    assert not list(work.path.glob("runs/*"))


# -- data ----------------------------------------------------------------------------------------

def test_shapes_are_deterministic_with_binary_masks_and_a_sealed_test_split() -> None:
    a, b = datasets.shapes(n=20, size=16, seed=3), datasets.shapes(n=20, size=16, seed=3)
    xa, ya = a.read(Path("."), "train")
    xb, yb = b.read(Path("."), "train")
    assert xa.shape == (16, 3, 16, 16) and ya.shape == (16, 16, 16) and xa.dtype == torch.uint8
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and set(ya.unique().tolist()) == {0, 1}
    assert not torch.equal(xa, datasets.shapes(n=20, size=16, seed=4).read(Path("."), "train")[0])
    assert a.content_hash(Path(".")) == b.content_hash(Path("."))
    with pytest.raises(TestSplitForbidden):
        a.read(Path("."), "test")  # no look that counts it: refused, as for every other source
    looks = []
    xt, yt = a.read(Path("."), "test", look=lambda: looks.append(1))
    assert looks == [1] and len(xt) == 4 and yt.shape == (4, 16, 16)
    assert datasets.from_spec(a.spec()) == a


def test_segmentation_folder_reads_pairs_and_names_a_missing_mask(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "images" / f"p{i}.jpg")
        mask = np.zeros((12, 10), dtype=np.uint8)
        mask[2:6, 3:7] = 255  # black and white: read as 0/1
        Image.fromarray(mask).save(tmp_path / "masks" / f"p{i}.png")
    src = datasets.segmentation_folder(tmp_path, size=(8, 8))
    x, y = src.read(tmp_path, "train")
    assert x.shape == (4, 3, 8, 8) and y.shape == (4, 8, 8) and set(y.unique().tolist()) == {0, 1}
    assert src.info.classes == ("background", "foreground") and datasets.from_spec(src.spec()) == src
    Study(dataset=src, space=lambda t: TrialConfig(model=UNet(depth=1, filters=4)), task=tasks.segment())
    Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "images" / "lonely.jpg")
    with pytest.raises(Exception, match=r"lonely.jpg has no mask in .*masks \(a file named lonely.png\)"):
        datasets.segmentation_folder(tmp_path).check(tmp_path)


# -- end to end: real workers, a real SQLite file, one look at the test split -------------------

def _record(work: Work, name: str) -> dict:
    return study_get(optuna.load_study(study_name=name, storage=work.url), RETRAIN)


@pytest.mark.slow
def test_reconstruct_search_and_retrain_report_psnr_and_mse(work: Work, cae_retrained: Finished) -> None:
    work.adopt(cae_retrained)
    out = json.loads(work.cli("best", "tiny_cae", "--retrain", "--json").stdout)["retrain"]
    assert out["test_looks"] == 1 and out["task"] == {"kind": "reconstruct", "loss": "mse"}
    assert set(out["test"]) == {"loss", "mse", "psnr", "ssim"} and len(out["test"]["psnr"]["values"]) == 2
    assert 5 < out["test"]["psnr"]["mean"] < 60 and out["test"]["mse"]["mean"] > 0 and out["test"]["psnr"]["std"] >= 0
    assert out["metric"] == "val_psnr" and "confusion" not in out
    table = work.cli("best", "tiny_cae", "--retrain").output
    assert "PSNR" in table and "MSE" in table and "top-1" not in table  # headers wrap at 80 columns
    settings = study_get(optuna.load_study(study_name="tiny_cae", storage=work.url), SETTINGS)
    assert settings["task"] == {"kind": "reconstruct", "loss": "mse"}
    model, ckpt = load_checkpoint(out["runs"][0]["checkpoint"])
    assert ckpt["task"]["kind"] == "reconstruct" and model(torch.zeros(1, 1, 8, 8)).shape == (1, 1, 8, 8)
    note = note_markdown("tiny_cae", _record(work, "tiny_cae"), [])  # the dashboard note `--retrain` published
    assert "| seed | test loss (MSE) | test MSE | test PSNR dB | test SSIM | val PSNR dB | seconds |" in note
    assert f"| test (2 seeds, mean ± std) | **{out['test']['psnr']['mean']:.4f} ± {out['test']['psnr']['std']:.4f}** |" in note


@pytest.mark.slow
def test_segment_search_and_retrain_report_f1_and_iou(work: Work, unet_retrained: Finished) -> None:
    work.adopt(unet_retrained)
    out = json.loads(work.cli("best", "tiny_unet", "--retrain", "--json").stdout)["retrain"]
    assert out["test_looks"] == 1 and out["task"]["kind"] == "segment"
    assert set(out["test"]) == {"loss", "pixel_acc", "f1", "iou"}
    for m in ("f1", "iou", "pixel_acc"):
        assert 0 <= out["test"][m]["mean"] <= 1 and len(out["test"][m]["values"]) == 2
    assert out["samples"]["shape"] == [12, 3, 32, 32] and len(out["distribution"]["values"]) == 24
    compared = json.loads(work.cli("compare", "tiny_unet", "--by", "upsampling", "--json").stdout)
    assert compared["metric"] == "val_f1" and compared["direction"] == "maximize"


@pytest.mark.slow
def test_encoder_transfer_fine_tunes_a_real_cae_fashion_checkpoint(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped studies end to end on a tiny stand-in Fashion-MNIST: cae_fashion searched and
    retrained, then encoder_transfer's grid (scratch / frozen / fine-tuned) on its checkpoint."""
    root = work.path / "fake-data"
    write_idx(root / "FashionMNIST" / "raw", "train", 240, seed=0)
    write_idx(root / "FashionMNIST" / "raw", "t10k", 60, seed=1)
    work.cli("run", "cae_fashion", "--n-trials", "1", "--data-root", str(root), "--pruner", "none")
    work.cli("best", "cae_fashion", "--retrain", "--seeds", "1", "--epochs", "1", "--data-root", str(root))
    ckpt = Path(_record(work, "cae_fashion")["runs"][0]["checkpoint"])
    assert ckpt.is_file() and ckpt.parent == work.path / "runs" / "cae_fashion"
    work.cli("run", "encoder_transfer", "--data-root", str(root))
    trials = optuna.load_study(study_name="encoder_transfer", storage=work.url).get_trials()
    assert sorted(t.params["arm"] for t in trials) == sorted(["scratch", "frozen", "finetuned"] * 3)
    assert all(t.state.name == "COMPLETE" for t in trials)
    frozen = next(t for t in trials if t.params["arm"] == "frozen")
    assert frozen.user_attrs["n_trainable"] < frozen.user_attrs["n_params"]  # only the head trains
    config = config_of(frozen)["model"]
    assert config["name"] == "encoder" and config["trunk"]["model"]["name"] == "cae"
    assert config["encoder_from"] == str(ckpt.resolve())


def test_a_task_registers_by_kind_and_is_rebuilt_from_what_a_study_stored() -> None:
    """The task registry is open the way models are: a study module registers its own, the study
    stores it by kind, and workers, retrains and reports rebuild it from that."""
    from dataclasses import dataclass

    import torch.nn.functional as F

    @tasks.register_task("smoothed_classify")
    @dataclass(frozen=True)
    class Smoothed(tasks.Classify):
        smoothing: float = 0.1

        def loss(self, out, x, y, data):  # noqa: ANN001, ANN201 - the Task signature
            return F.cross_entropy(out, y, label_smoothing=self.smoothing)

    task = Smoothed(smoothing=0.2)
    assert task.to_dict() == {"kind": "smoothed_classify", "smoothing": 0.2}
    assert tasks.from_dict(task.to_dict()) == task and "smoothed_classify" in tasks.registered()
    assert task.test_sections == tasks.classify().test_sections  # what the report draws: asked of the task
    with pytest.raises(ValueError, match="'nope' is not registered"):
        tasks.from_dict({"kind": "nope"})
    with pytest.raises(TypeError, match="decorates a Task subclass"):
        tasks.register_task("bad")(int)  # type: ignore[type-var]


def test_a_sigmoid_decoder_is_taken_as_pixels_when_declared_and_refused_when_not() -> None:
    """A decoder ending in Sigmoid trained under reconstruct to 10.6 dB without a word: its [0, 1]
    output was read as normalised images (issue 33)."""
    from types import SimpleNamespace

    from hpsearch.tasks import from_dict, reconstruct

    pixels = torch.rand(4, 1, 8, 8)
    mean, std = torch.tensor([0.3]), torch.tensor([0.4])
    data = SimpleNamespace(mean=mean, std=std)
    x = (pixels - mean[None, :, None, None]) / std[None, :, None, None]  # what the model takes
    sigmoid_decoder = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Sigmoid())
    with pytest.raises(ValueError, match=r"ends in a Sigmoid.*reconstruct\(output='pixels'\)"):
        reconstruct().check_model(sigmoid_decoder)
    declared = reconstruct(output="pixels")
    declared.check_model(sigmoid_decoder)  # fine once declared
    reconstruct().check_model(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1)))  # a linear decoder (cae's)
    assert float(declared.loss(pixels, x, x, data)) == pytest.approx(0.0, abs=1e-12)  # its output *is* pixels
    assert float(reconstruct().loss(x, x, x, data)) == pytest.approx(0.0, abs=1e-12)  # the normalised way, as before
    assert from_dict(declared.to_dict()) == declared
    assert from_dict({"kind": "reconstruct", "loss_name": "l1"}).output == "normalized"  # a study stored before
    with pytest.raises(ValueError, match="output=...\\) must be one of normalized, pixels"):
        reconstruct(output="0-1")
