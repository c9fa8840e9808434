"""A trial that runs out of GPU memory is not a crash: re-queued, or failed with the reason.

Several trials may share a card (``--workers`` above the GPU count). When one of them hits
``torch.OutOfMemoryError`` (what CUDA's allocator raises; ``torch.cuda.OutOfMemoryError`` is the
same class) the memory may be taken by its co-tenants, not by itself: then the trial is failed
*and its parameters re-queued* (``study.enqueue_trial``), so a worker runs them again, as a new
trial, once memory has come free. A trial that ran out with no co-tenant on its device does not
fit there at all: it fails with a message that says so, and counts toward the worker's
consecutive-failure stop (a space where nothing fits must end, not loop).

Co-tenants are the other RUNNING trials on the same device of the same machine, read from the
study (each trial records its ``device`` and ``worker``: host and pid). A re-queued trial is
re-queued at most :data:`MAX_REQUEUES` times, so a config that only ever fits alone cannot
cycle forever while the card stays busy. The re-run gets a new trial number and so a new
training seed.

On a CPU this never happens for real (a failed host allocation is a ``RuntimeError``); the
tests raise the error from a fixture model (``tests/studies/oom.py``).
"""

from __future__ import annotations

import gc
import socket
import warnings
from collections.abc import Sequence

import optuna
import torch
from optuna.trial import TrialState

from hpsearch.store.records import OOM_REQUEUED_FROM, OOM_REQUEUES
from hpsearch.study.samplers import CELL_ATTR

MAX_REQUEUES = 3


def co_tenants(study: optuna.Study, trial: optuna.Trial) -> list[int]:
    """Numbers of the other trials RUNNING now on this trial's device on this machine."""
    attrs = trial.user_attrs
    device, host = attrs.get("device"), socket.gethostname()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t.number for t in running if t.number != trial.number and t.user_attrs.get("device") == device
            and str(t.user_attrs.get("worker", "")).split(":")[0] == host]


def free_cuda_memory() -> None:
    """Drop what the failed trial left cached (its frames are gone once the error is handled)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def handle(study: optuna.Study, trial: optuna.Trial, err: BaseException, pack: Sequence[int] = ()) -> tuple[str, bool]:
    """Record why ``trial`` ran out of memory and re-queue it if co-tenants may be the cause.

    ``pack``: the trials its worker trained with it (``run --trials-per-worker``): co-tenants
    too, even once they are told (a fused pack that ran out fails together, one trial at a time).
    Returns ``(message, requeued)``; the caller fails the trial with ``message`` as its error.
    """
    others = sorted(set(co_tenants(study, trial)) | (set(pack) - {trial.number}))
    device = trial.user_attrs.get("device", "the device")
    retries = int(trial.user_attrs.get(OOM_REQUEUES, 0))
    detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    if others and retries < MAX_REQUEUES:
        attrs = {OOM_REQUEUED_FROM: trial.number, OOM_REQUEUES: retries + 1}
        cell = trial.user_attrs.get(CELL_ATTR)
        if cell is not None:  # a grid cell stays that cell
            attrs[CELL_ATTR] = cell
        with warnings.catch_warnings():  # enqueue_trial's user_attrs are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.enqueue_trial(dict(trial.params), user_attrs=attrs, skip_if_exists=False)
        return (f"out of GPU memory on {device} with {len(others)} other trial(s) there "
                f"({', '.join(map(str, others))}); its parameters are re-queued ({detail})"), True
    if others:
        return (f"out of GPU memory on {device} with co-tenants {MAX_REQUEUES + 1} times; given up "
                f"— run with fewer --workers ({detail})"), False
    return (f"out of GPU memory: this config does not fit on {device} even alone; shrink the model or "
            f"the batch size ({detail})"), False
