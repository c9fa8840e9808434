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

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict, cast

import optuna
from optuna.trial import FrozenTrial

from hpsearch.fmt import Summary
from hpsearch.models import LEGACY_MODEL
from hpsearch.store.compat import storage_of, study_id, trial_id
from hpsearch.study.samplers import CELL  # trial user attribute: the grid cell it was handed (defined below the store)
from hpsearch.tasks import Task
from hpsearch.tasks import from_dict as task_from_dict

if TYPE_CHECKING:
    from typing_extensions import Unpack

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


class PendingLook(TypedDict, total=False):
    """The marker a look at the test split leaves (study record :data:`PENDING`) from the moment
    it is counted until its record is written: found later, it names a look that was killed."""

    look: int  # the look's number (the counter was already at it)
    what: str  # "retrain" or "compare --test" (records before this field: a retrain)
    trial: int  # retrain: the trial being evaluated
    seeds: list[int]
    trials: list[int]  # compare --test: every trial retrained for it


class ComparisonGroup(TypedDict, total=False):
    """One row of a ``compare --test``: its parameter values, its trials, and ``test_<metric>``
    (:class:`Summary` over every model of the row) for each metric the task computes."""

    params: dict[str, Any]
    trials: list[int]


class ComparisonRecord(TypedDict, total=False):
    """One ``compare --test`` (the study record :data:`COMPARE_TEST` holds every one, in order)."""

    look: int  # its look number
    interrupted_looks: list[int]  # the killed look it found pending (that look counts)
    by: list[str]  # the parameters grouped by
    metric: str  # the study metric
    groups: list[ComparisonGroup]
    reproduced: int  # trials whose retrained validation score equalled the search's
    retrained: int  # trials retrained for it
    device: str
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
    """The study's latest retrain, or None if it was never retrained (upgraded: :func:`upgrade_retrain`)."""
    stored = study_get(study, RETRAIN)
    return upgrade_retrain(stored) if stored else None


def upgrade_retrain(stored: Mapping[str, Any]) -> RetrainRecord:
    """A retrain record of any version in today's layout, so that no reader guesses at defaults.

    hpsearch 0.1 stored no ``task`` (it was classify), no ``rounds`` (one), no ``refit`` and no
    ``candidates`` (``--top-k`` came later) and no ``interrupted_looks``; a record written before
    looks were numbered was look 1. What cannot be known stays absent: 0.1 kept no ``model`` or
    ``n_params`` (its CNN's arguments were the trial's parameters, which the record does not
    rebuild), and the keys a task adds only for itself (``mistakes``, ``distribution``,
    ``confusion_per_seed``) exist only where they were written: readers draw those parts only
    when they are there.
    """
    rec = cast(RetrainRecord, dict(stored))
    rec.setdefault("task", task_from_dict(None).to_dict())
    rec.setdefault("rounds", 1)
    rec.setdefault("refit", False)
    rec.setdefault("candidates", [])
    rec.setdefault("interrupted_looks", [])
    rec.setdefault("test_looks", 1)
    rec.setdefault("seeds", [int(r["seed"]) for r in rec.get("runs", []) if "seed" in r])
    rec.setdefault("val", {})
    rec.setdefault("test", {})
    rec.setdefault("metric", "val_top1")
    return rec


def comparison_records(study: optuna.Study) -> list[ComparisonRecord]:
    """Every ``compare --test`` of the study, oldest first."""
    return list(study_get(study, COMPARE_TEST) or [])


def pending_look(study: optuna.Study) -> PendingLook | None:
    """The look a killed ``best --retrain`` or ``compare --test`` counted and never recorded, if any."""
    marker: PendingLook | None = study_get(study, PENDING) or None
    if marker is not None and "what" not in marker:
        marker = {**marker, "what": "retrain"}  # the only look there was before compare --test
    return marker


def count_look(study: optuna.Study, marker: PendingLook) -> None:
    """Count a look at the test split before its first image is read: the study counter and the
    pending marker, written ahead (a look killed after this over-counts, never hides)."""
    study.set_user_attr(LOOKS, marker["look"])
    study_put(study, PENDING, marker)


def close_look(study: optuna.Study, record: RetrainRecord | ComparisonRecord) -> None:
    """Store a look's record (a retrain replaces the last; a comparison is appended) and clear the
    pending marker: the look is complete."""
    if "groups" in record:
        study_put(study, COMPARE_TEST, [*comparison_records(study), record])
    else:
        study_put(study, RETRAIN, record)
    study_put(study, PENDING, None)


def task_of(rec: RetrainRecord) -> Task:
    """The task a retrain record was scored by; records from before tasks existed are classify."""
    return task_from_dict(rec.get("task"))


def looks_counted(study: optuna.Study) -> int:
    """Looks at the test split so far, killed ones included: the study counter, written before
    each look. hpsearch 0.1 kept no counter; its retrain record's look number is the count."""
    counted = study.user_attrs.get(LOOKS)
    if counted is not None:
        return int(counted)
    rec = retrain_record(study)
    return int(rec.get("test_looks", 0)) if rec else 0


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
    fused_with: list[int]  # run --trials-per-worker: the trials it trained beside, as one model
    best_epoch: int  # 1-based epoch of the study metric's best validation value (its curves hold every metric)


def put_attrs(trial: optuna.Trial, **attrs: Unpack[TrialAttrs]) -> None:
    """Set a running trial's small attributes by name; mypy checks each name and type against
    :class:`TrialAttrs`, so no other module spells a stored key."""
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def fail_frozen(study: optuna.Study, trial: FrozenTrial, error: str) -> bool:
    """Fail a trial this process does not own (its worker is dead), with ``error`` as the reason.
    False when it had finished meanwhile (another process failed or told it): left as it is."""
    storage = storage_of(study)
    try:
        storage.set_trial_user_attr(trial_id(trial), "error", error)
        return bool(storage.set_trial_state_values(trial_id(trial), optuna.trial.TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def enqueue(study: optuna.Study, params: Mapping[str, Any], *, cell: dict[str, Any] | None = None,
            requeued_from: int | None = None, requeues: int | None = None) -> None:
    """Queue a trial with these parameters and the attributes it starts with: its grid ``cell``
    (kept on a retry), and after an out-of-memory the trial it stands in for and the count."""
    attrs: dict[str, Any] = {}
    if cell is not None:
        attrs[CELL] = cell
    if requeued_from is not None:
        attrs[OOM_REQUEUED_FROM] = requeued_from
    if requeues is not None:
        attrs[OOM_REQUEUES] = requeues
    with warnings.catch_warnings():  # enqueue_trial's user_attrs are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.enqueue_trial(dict(params), user_attrs=attrs, skip_if_exists=False)


@dataclass(frozen=True)
class TrialRecord:
    """What one trial measured, as every reader sees it, whichever version wrote it.

    Built by :func:`trial_record` (from a :class:`FrozenTrial`) or :meth:`of` (from the raw
    attributes, as the fast SQL reads in ``rows`` get them). The upgrades of older layouts
    happen here and nowhere else: a trial of hpsearch 0.1 has no ``model`` (it trained the CNN),
    a trial from before ``best_epoch`` was recorded gets it from its curve.
    """

    number: int
    seed: int | None = None
    seeds: tuple[int, ...] = ()  # every training seed (one unless repeats)
    device: str | None = None
    threads: int | None = None
    worker: str | None = None
    model: str | None = None
    n_params: int | None = None
    n_trainable: int | None = None
    flops: int | None = None
    rejected: str | None = None
    diverged_at_epoch: int | None = None
    seconds: float | None = None
    epochs: int | None = None
    repeat_values: tuple[float, ...] = ()
    fused: int | None = None
    fused_with: tuple[int, ...] = ()
    gpu_peak_bytes: int | None = None
    oom_requeued_from: int | None = None
    oom_requeues: int = 0
    error: str | None = None
    traceback: str | None = None
    cell: dict[str, Any] | None = None  # the grid cell it was handed
    best_epoch: int | None = None  # of the study metric (trial_record fills it in for older trials)
    curves: dict[str, list[float | None]] = field(default_factory=dict)  # every metric, train and val, per epoch
    repeat_curves: dict[str, list[list[float]]] = field(default_factory=dict)  # with repeats: each seed's

    @classmethod
    def of(cls, number: int, attrs: Mapping[str, Any], curves: Mapping[str, list[float | None]] | None = None,
           repeat_curves: Mapping[str, list[list[float]]] | None = None) -> TrialRecord:
        """From stored user attributes (and the bulky curves, where the caller read them)."""
        a = attrs
        seed = a.get("seed")
        return cls(
            number=number, seed=seed, seeds=tuple(a.get("seeds") or ([seed] if seed is not None else [])),
            device=a.get("device"), threads=a.get("threads"), worker=a.get("worker"),
            model=a.get("model", LEGACY_MODEL if "n_params" in a else None),  # 0.1 trained only the CNN
            n_params=a.get("n_params"), n_trainable=a.get("n_trainable"), flops=a.get("flops"),
            rejected=a.get("rejected"), diverged_at_epoch=a.get("diverged_at_epoch"), seconds=a.get("seconds"),
            epochs=a.get("epochs"), repeat_values=tuple(a.get("repeat_values") or ()), fused=a.get("fused"),
            fused_with=tuple(a.get("fused_with") or ()), gpu_peak_bytes=a.get("gpu_peak_bytes"),
            oom_requeued_from=a.get("oom_requeued_from"), oom_requeues=int(a.get("oom_requeues") or 0),
            error=a.get("error"), traceback=a.get("traceback"), cell=a.get(CELL), best_epoch=a.get("best_epoch"),
            curves=dict(curves or {}), repeat_curves=dict(repeat_curves or {}))

    @classmethod
    def of_trial(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        """Its small attributes only (no curves): what a listing, a placement or a plot of sizes needs."""
        return cls.of(trial.number, trial.user_attrs)

    @property
    def host(self) -> str | None:
        """The machine it ran on (``worker`` is ``host:pid``)."""
        return self.worker.split(":")[0] if self.worker else None

    @property
    def why_not_trained(self) -> str | None:
        """A failed trial's error, or why it was rejected before training."""
        return self.error or self.rejected


def best_epoch(curve: list[float | None], maximize: bool) -> int | None:
    """The 1-based epoch of a curve's best value (the earliest of equal ones); None if it has none."""
    scored = [(v, i) for i, v in enumerate(curve, 1) if v is not None]
    if not scored:
        return None
    pick = max(scored, key=lambda s: (s[0], -s[1])) if maximize else min(scored, key=lambda s: (s[0], s[1]))
    return pick[1]


def trial_record(trial: FrozenTrial, metric: str | None = None, maximize: bool = True) -> TrialRecord:
    """The trial's :class:`TrialRecord`. Given the study ``metric`` and its direction, a trial
    written before ``best_epoch`` was recorded gets it from its curve of that metric."""
    rec = TrialRecord.of(trial.number, trial.user_attrs, curves_of_trial(trial), repeat_curves_of(trial))
    if rec.best_epoch is None and metric is not None:
        rec = replace(rec, best_epoch=best_epoch(rec.curves.get(metric) or [], maximize))
    return rec


# trial user attributes other modules name (TrialAttrs lists them all)
GPU_PEAK = "gpu_peak_bytes"
OOM_REQUEUED_FROM = "oom_requeued_from"
OOM_REQUEUES = "oom_requeues"
ELAPSED = "hpsearch:elapsed"  # trial system attribute: [[step, seconds since its start], …] for median-time pruning
TRIAL_ATTRS = frozenset(TrialAttrs.__annotations__) | {CELL}
STUDY_ATTRS = frozenset({LOOKS, RETRAIN_LINE})  # study user attributes; the rest are the records above


def small_attrs(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's user attributes as stored, less the bulky records old versions kept there."""
    return {k: v for k, v in trial.user_attrs.items() if k not in _OLD_NAMES.values()}


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
