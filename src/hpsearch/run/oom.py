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
from collections.abc import Sequence

import optuna
import torch
from optuna.trial import TrialState

from hpsearch.store.records import TrialRecord, enqueue

MAX_REQUEUES = 3


def co_tenants(study: optuna.Study, trial: optuna.Trial) -> list[int]:
    """Numbers of the other trials RUNNING now on this trial's device on this machine."""
    device, host = TrialRecord.of_trial(trial).device, socket.gethostname()
    running = [TrialRecord.of_trial(t)
               for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    return [t.number for t in running if t.number != trial.number and t.device == device and t.host == host]


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
    mine = TrialRecord.of_trial(trial)
    device, retries = mine.device or "the device", mine.oom_requeues
    detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    if others and retries < MAX_REQUEUES:
        enqueue(study, trial.params, cell=mine.cell, requeued_from=trial.number, requeues=retries + 1)
        return (f"out of GPU memory on {device} with {len(others)} other trial(s) there "
                f"({', '.join(map(str, others))}); its parameters are re-queued ({detail})"), True
    if others:
        return (f"out of GPU memory on {device} with co-tenants {MAX_REQUEUES + 1} times; given up "
                f"— run with fewer --workers ({detail})"), False
    return (f"out of GPU memory: this config does not fit on {device} even alone; shrink the model or "
            f"the batch size ({detail})"), False
