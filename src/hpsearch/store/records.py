"""Where a trial's bulky records live, and how to read them from any version's study.

optuna-dashboard shows every user attribute of a trial on its page, unwrapped: the full
``config`` (the model spec, the optimiser, the augmentation) and the per-epoch ``curves`` made
trial pages thousands of pixels wide. Both are machine records — the parameters and the
intermediate values already show what a reader needs — so they are now trial *system*
attributes under ``hpsearch:`` keys, which the dashboard does not list. The small attributes
(epochs, seconds, n_params, model, seed, device, …) stay user attributes: they read well there.

Studies written before this change keep them as user attributes (tests/fixtures/dc7b503 is one); every reader goes through
:func:`config_of`, :func:`curves_of_trial` and :func:`repeat_curves_of`, which look in both places.

The study's page had the same problem: the stored settings, the code fingerprint and the retrain
record (its curves, sample pixels and confusion matrices) were study user attributes, shown there
as JSON blobs. They are study system attributes now (same keys; :func:`study_get` reads either
place), and the page shows what a reader wants in one line each: :data:`RETRAIN_LINE` (which
trial, its test score ± std over how many seeds) beside the count of test looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

import optuna
from optuna.trial import FrozenTrial

from hpsearch.fmt import Summary
from hpsearch.store.compat import storage_of, study_id, trial_id
from hpsearch.study.samplers import CELL_ATTR as CELL  # trial user attribute: the grid cell it was handed

CONFIG = "hpsearch:config"  # TrialConfig.to_dict(): what the trial trained (user attribute "config" before)
CURVES = "hpsearch:curves"  # {"train_loss": [...], "val_top1": [...], "seconds": [...], …} per epoch ("curves")
REPEAT_CURVES = "hpsearch:repeat_curves"  # with repeats: {metric: [each seed's curve]} ("repeat_curves")
_OLD_NAMES = {CONFIG: "config", CURVES: "curves", REPEAT_CURVES: "repeat_curves"}


# study records (system attributes; user attributes in studies written before, same keys)
SETTINGS = "hpsearch:settings"  # StoredSettings.to_dict(): dataset, task, metric, epochs, sampler, …
FINGERPRINT = "hpsearch:fingerprint"  # fingerprint(): the study module's and model/data code's hashes
RETRAIN = "hpsearch:retrain"  # the latest retrain: seeds, test scores, confusion, curves, samples
COMPARE_TEST = "hpsearch:compare_test"  # every `compare --test`, with its look number and scores
PUBLISHED = "hpsearch:published"  # which retrain round's figures are uploaded as study artifacts
PENDING = "hpsearch:test_look_pending"  # the look under way; left behind when a retrain dies
_STUDY_RECORDS = (SETTINGS, FINGERPRINT, RETRAIN, COMPARE_TEST, PUBLISHED, PENDING)
# small study user attributes, meant to be read on the dashboard's study page
LOOKS = "hpsearch:test_looks"  # looks at the test split, counted *before* each one happens
RETRAIN_LINE = "retrain"  # "trial 12: test top1 0.9712 ± 0.0031 over 5 seeds (look 1)"


class SeedRun(TypedDict, total=False):
    """One retrained model (``RetrainRecord["runs"]``): its seed, its last-epoch validation and its
    one test evaluation, keyed ``val_<metric>`` / ``test_<metric>`` by the task's metrics."""

    seed: int
    seconds: float  # training wall time
    trained_on: str  # "train", or "train+val" for a refit
    fused: bool  # trained as one model with the other seeds (hpsearch.train.fused); seconds is its share
    checkpoint: str  # absolute path of the .pt written before the next seed trained
    curves: dict[str, list[float | None]]  # per epoch, as a trial's curves
    test_per_class_top1: list[float]  # classify
    sample_predictions: list[int]  # classify: the predicted class of each stored sample image
    # val_loss, val_top1, test_loss, test_top1, test_topk (classify); val_psnr, test_ssim, … (others)
    # classify also: test_per_class_top1 (list), sample_predictions (list of class indices)


class Pixels(TypedDict, total=False):
    """Images stored with a record: uint8 pixels, base64, C×H×W each (``shape`` is N×C×H×W)."""

    shape: list[int]
    pixels: str
    labels: list[int]  # classify: the true classes
    reconstructions: str  # reconstruct: the first seed's output for the same images
    masks: str  # segment: the true masks (N×H×W uint8)
    predicted: str  # segment: the first seed's masks


class Mistakes(TypedDict):
    """Classify: the first seed's misclassified test images, those most seeds missed first."""

    total: int
    models: int
    indices: list[int]
    labels: list[int]
    predicted: list[int]
    wrong_in: list[int]
    shape: list[int]
    pixels: str


class Distribution(TypedDict):
    """Reconstruct / segment: the first seed's per-image scores of one metric."""

    metric: str
    values: list[float]


class RetrainRecord(TypedDict, total=False):
    """What ``best --retrain`` stores (study record :data:`RETRAIN`) and every view reads.

    ``total=False``: records written by earlier versions lack some keys (no ``task``: classify;
    no ``model``: the built-in CNN; no ``confusion_per_seed``, ``mistakes``, ``rounds``), and
    readers use ``.get`` for those. The task adds its own keys (:meth:`Task.test_record`).
    """

    trial: int  # the retrained trial's number
    metric: str  # the study metric, "val_top1"
    search_value: float | None  # the trial's search score (one seed)
    search_values: dict[str, float]  # every objective's, by name
    params: dict[str, Any]
    model: dict[str, Any]  # ModelSpec.to_dict() exactly as retrained
    n_params: int
    epochs: int
    search_epochs: int  # differs from epochs when --epochs trained longer
    refit: bool  # trained on train + validation: no validation scores
    seeds: list[int]
    task: dict[str, Any]  # Task.to_dict()
    device: str
    runs: list[SeedRun]
    val: dict[str, Summary]  # metric (no prefix) → mean ± std over seeds
    test: dict[str, Summary]
    candidates: list[dict[str, Any]]  # --top-k: {"trial", "search_value", **Summary} per candidate
    first_layer: dict[str, Any] | None  # the first conv's filters, for the report
    test_looks: int  # this look's number
    interrupted_looks: list[int]
    rounds: int  # retrain rounds so far (fresh seeds each)
    # what the task adds (Task.test_record)
    topk_k: int | None  # classify: the k of top-k (None: too few classes)
    confusion: list[list[int]]  # classify: summed over the seeds
    confusion_per_seed: list[list[list[int]]]
    classes: list[str]  # classify, segment
    samples: Pixels
    mistakes: Mistakes
    distribution: Distribution  # reconstruct, segment
    # provenance (results.provenance.evidence)
    versions: dict[str, str]
    git: str | None
    command: str
    host: str
    created: str


def run_metric(run: SeedRun, key: str) -> float | None:
    """One seed's number by its stored name (``test_top1``, ``val_psnr``): the task names them."""
    value = cast(Mapping[str, Any], run).get(key)
    return None if value is None else float(value)


def retrain_record(study: optuna.Study) -> RetrainRecord | None:
    """The study's latest retrain, or None if it was never retrained."""
    rec: RetrainRecord | None = study_get(study, RETRAIN)
    return rec


def study_get(study: optuna.Study, key: str, default: Any = None) -> Any:
    """A study record (one of the keys above) from wherever this study's version stored it."""
    if key in _STUDY_RECORDS:
        found = storage_of(study).get_study_system_attrs(study_id(study))
        if key in found:
            return found[key]
    return study.user_attrs.get(key, default)


def study_put(study: optuna.Study, key: str, value: Any) -> None:
    """Store a study record: bulky ones out of the dashboard's sight, the small ones in it."""
    if key in _STUDY_RECORDS:
        storage_of(study).set_study_system_attr(study_id(study), key, value)
    else:
        study.set_user_attr(key, value)


class TrialAttrs(TypedDict, total=False):
    """A trial's user attributes: short values, listed on the dashboard's trial pages.

    Written by ``run/objective.py`` (before and after training) and ``run/workers.py`` (failures). The
    bulky ones are trial system attributes: :data:`CONFIG`, :data:`CURVES`, :data:`REPEAT_CURVES`,
    :data:`ELAPSED`.
    """

    seed: int  # the trial's seed (the first of its repeats)
    seeds: list[int]  # Study(repeats=r): every repeat's seed
    device: str
    threads: int  # torch threads it trained with (the curve reproduces with the same count)
    worker: str  # "host:pid"
    model: str  # the model spec's registered name
    n_params: int
    n_trainable: int
    flops: int  # forward FLOPs of one image (torch.utils.flop_counter)
    rejected: str  # why it was pruned before training (an infeasible or too-large model)
    diverged_at_epoch: int
    seconds: float  # training + validation time, all repeats
    epochs: int  # epochs trained (fewer when pruned)
    repeat_values: list[float]  # with repeats: each seed's last metric value
    fused: int  # with repeats trained as one model (hpsearch.train.fused): how many
    gpu_peak_bytes: int  # on CUDA: peak memory allocated while it trained (what --workers auto packs by)
    oom_requeued_from: int  # re-queued after that trial ran out of GPU memory beside co-tenants (hpsearch.run.oom)
    oom_requeues: int  # how many times these parameters were re-queued so far
    error: str  # a failed trial's cause in one line ("interrupted (SIGTERM)", "KeyError: 'x'")
    traceback: str  # the failure's traceback, last 4,000 characters


# trial user attributes other modules name (TrialAttrs lists them all)
GPU_PEAK = "gpu_peak_bytes"
OOM_REQUEUED_FROM = "oom_requeued_from"
OOM_REQUEUES = "oom_requeues"
ELAPSED = "hpsearch:elapsed"  # trial system attribute: [[step, seconds since its start], …] for median-time pruning
TRIAL_ATTRS = frozenset(TrialAttrs.__annotations__) | {CELL}
STUDY_ATTRS = frozenset({LOOKS, RETRAIN_LINE})  # study user attributes; the rest are the records above


def put(trial: optuna.Trial, key: str, value: Any) -> None:
    """Store a bulky record of the running ``trial`` (one of the keys above)."""
    storage_of(trial.study).set_trial_system_attr(trial_id(trial), key, value)


def _get(trial: FrozenTrial, key: str) -> Any:
    if key in trial.system_attrs:
        return trial.system_attrs[key]
    return trial.user_attrs.get(_OLD_NAMES[key])


def config_of(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's ``TrialConfig.to_dict()``; KeyError if it never got one (rejected before training)."""
    config = _get(trial, CONFIG)
    if config is None:
        raise KeyError(f"trial {trial.number} has no recorded config")
    return config


def curves_of_trial(trial: FrozenTrial) -> dict[str, list[float | None]]:
    """Per-epoch curves by name (empty if the trial trained no epoch)."""
    return _get(trial, CURVES) or {}


def repeat_curves_of(trial: FrozenTrial) -> dict[str, list[list[float]]]:
    """With repeats: each seed's curve of the study metric, by metric name (empty otherwise)."""
    return _get(trial, REPEAT_CURVES) or {}
