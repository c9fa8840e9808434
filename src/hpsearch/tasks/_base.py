"""The task interface, and the evaluation loop every task shares.

Kept free of a module-level torch import: ``Study`` validates its metric against the task
when a study module is imported, which the read-only commands do without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpsearch.data import DatasetInfo, Source, Tensors

Direction = Literal["maximize", "minimize"]

# Evaluation batch per device type. On a GPU large batches amortise launch overhead; on a CPU
# they fall out of cache: 5k FashionMNIST images through the reference CNN take 0.47 s at 256
# but 1.37 s at 2048 (1 thread, channels-last; see docs/benchmarks.md).
EVAL_BATCH = {"cpu": 256, "cuda": 2048}


@dataclass(frozen=True)
class Column:
    """One metric as the views show it: record key (unprefixed), heading, and percent or not."""

    key: str
    label: str
    pct: bool = False


@dataclass
class ModelTest:
    """One model's single test evaluation, as its task scored it.

    Retrain evaluates and checkpoints the models one at a time (a retrain killed between two
    models has saved the first), then asks the task to merge what each kept into the record.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    metrics: dict[str, float | None]  # unprefixed metric → value
    run: dict[str, Any] = field(default_factory=dict)  # extra keys of this model's run entry
    keep: dict[str, Any] = field(default_factory=dict)  # what test_record() merges (counts, samples)


class Task:
    """Base of the tasks; concrete ones are frozen dataclasses (their fields are the options).

    The trainer calls :meth:`loss` per step and :meth:`evaluate` per epoch; the objective and
    the views read :attr:`METRICS` (unprefixed name → direction); retrain calls
    :meth:`test_model` for each model and :meth:`test_record` once per look at the test split.
    """

    kind: ClassVar[str] = ""
    METRICS: ClassVar[dict[str, Direction]] = {}  # what evaluate() returns, first the loss
    TRAIN_METRICS: ClassVar[tuple[str, ...]] = ()  # measured on the training batches as trained (train_<name>);
    # train_counts may add more for some data (classify: topk, where the classes are enough for one)
    default_metric: ClassVar[str] = ""
    headline: ClassVar[str] = ""  # the metric the per-seed tables show for validation, and sum up in one line
    needs_masks: ClassVar[bool] = False  # the dataset must come with per-pixel masks
    augments: ClassVar[bool] = True  # batch augmentations keep the targets true (not for masks)
    # what the report draws from this task's test record, in order (views/report.py's TEST_SECTIONS):
    # the views ask the task, never its kind
    test_sections: ClassVar[tuple[str, ...]] = ()

    # -- names and directions --------------------------------------------------------------

    def directions(self) -> dict[str, Direction]:
        """Every validation metric a study of this task can optimise (``val_<name>``)."""
        return {f"val_{k}": v for k, v in self.METRICS.items()}

    def check_metric(self, metric: str) -> None:
        if metric not in self.directions():
            raise ValueError(f"metric {metric!r} is not one of the {self.kind} task's: "
                             f"{', '.join(self.directions())}")

    def check_source(self, source: Source) -> None:
        """One clear line when the dataset cannot serve this task (no masks, masks only)."""
        has = bool(getattr(source, "has_masks", False))
        label = getattr(source, "label", "the dataset")
        if self.needs_masks and not has:
            raise ValueError(f"the {self.kind} task needs a dataset with masks (datasets.shapes(...) or "
                             f"datasets.segmentation_folder(...)); {label} has class labels only")

    def check_augment(self, augment: str) -> None:
        if augment != "none" and not self.augments:
            raise ValueError(f"augment {augment!r} would move the images but not their masks; the {self.kind} "
                             "task trains with augment='none'")

    def check_model(self, model: nn.Module) -> None:
        """Called once on every model built to train, before its first step: one clear line for a
        model this task would train to a wrong result."""

    def check_output(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called on the first training batch: one clear line when the model's output cannot be scored."""

    # -- training and evaluation ---------------------------------------------------------

    def loss(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, data: Tensors) -> torch.Tensor:
        """The mean training loss of one batch (``x`` normalised as the model saw it)."""
        raise NotImplementedError

    def train_counts(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sums over the batch of :attr:`TRAIN_METRICS` (no extra pass: the training step's own output)."""
        return {}

    def evaluate(self, model: nn.Module, data: Tensors, info: DatasetInfo) -> dict[str, float | None]:
        """Every metric of :attr:`METRICS` on ``data``, averaged over its images."""
        raise NotImplementedError

    def test_model(self, model: nn.Module, test: Tensors, info: DatasetInfo, index: int) -> ModelTest:
        """Score one retrained model (``index``: its place among the seeds; the first keeps samples)."""
        raise NotImplementedError

    def test_record(self, results: list[ModelTest], test: Tensors, info: DatasetInfo) -> dict[str, Any]:
        """The retrain record's task-specific keys, from every model's evaluation."""
        return {}

    # -- views ----------------------------------------------------------------------------

    def columns(self, rec: Mapping[str, Any]) -> list[Column]:
        """The per-seed table's test columns for a retrain record of this task."""
        raise NotImplementedError

    def headline_column(self, rec: Mapping[str, Any]) -> Column:
        return next(c for c in self.columns(rec) if c.key == self.headline)

    # -- storage --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]


def eval_batches(data: Tensors, batch_size: int | None = None) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(rows, normalised images)`` over ``data`` in batches sized for its device, laid out as
    the trainer lays them out (channels-last on a CPU, where it doubles conv throughput)."""
    import torch

    batch_size = batch_size or EVAL_BATCH.get(data.device.type, 256)
    fmt = torch.channels_last if data.device.type == "cpu" else torch.contiguous_format
    for i in range(0, len(data), batch_size):
        rows = slice(i, i + batch_size)
        yield rows, data.batch(rows).contiguous(memory_format=fmt)


def to_pixels(x: torch.Tensor, data: Tensors) -> torch.Tensor:
    """Normalised images back to pixels in [0, 1] (what PSNR and SSIM are defined on)."""
    return (x * data.std[None, :, None, None] + data.mean[None, :, None, None]).clamp(0, 1)


def pixels_u8(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] images as uint8 on the CPU (what the record keeps for the report)."""
    import torch

    return x01.detach().float().mul(255).round().clamp(0, 255).to(torch.uint8).cpu()
