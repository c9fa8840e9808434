"""Where a run's workers go: how many, on which devices, with how many threads, and how many
may train at once on a CPU. Every rule of it lives here, decided once per run by :func:`allocate`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import optuna
import torch

from hpsearch.store.records import TrialRecord


@dataclass(frozen=True)
class Allocation:
    """The workers of one run, as the supervisor starts them."""

    devices: list[str]  # one per worker: "cpu", or "cuda:i" (worker i on GPU i mod count)
    threads: int  # torch threads per worker
    slots: int  # CPU trials that may train at once (0: no limit needed)

    @property
    def workers(self) -> int:
        return len(self.devices)


def allocate(device: torch.device, workers: int | str, remaining: int, study: optuna.Study,
             cpu_slots: int | None = None) -> Allocation:
    """``workers`` (a number or "auto") capped by the trials ``remaining`` (at least one, to wait
    for running ones), on the resolved ``device``. ``cpu_slots``: how many CPU trials may train at
    once (None: the cores; 0: no limit)."""
    wanted = auto_workers(device, study) if workers == "auto" else int(workers)
    n = min(wanted, max(1, remaining))
    devices = worker_devices(device, n)
    limit = cpu_cores() if cpu_slots is None else cpu_slots
    slots = limit if device.type == "cpu" and 0 < limit < n else 0
    return Allocation(devices, threads_per_worker(n), slots)


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    """Split the cores: max(1, cores // workers) (more workers than cores: see CpuSlots)."""
    return max(1, cpu_cores() // workers)


MEMORY_HEADROOM = 0.8  # of a card's memory that --workers auto plans to fill (allocator cache, cuDNN workspaces)
MAX_PER_GPU = 8  # --workers auto never puts more trials than this on one card


def workers_for_memory(card_bytes: int, peaks: list[int], gpus: int) -> int:
    """Trials per card that fit: ``card × headroom // largest measured peak`` (1 to
    :data:`MAX_PER_GPU`), times the cards; one per card while nothing is measured yet."""
    per_card = 1 if not peaks else max(1, min(MAX_PER_GPU, int(card_bytes * MEMORY_HEADROOM) // max(1, max(peaks))))
    return per_card * max(1, gpus)


def auto_workers(device: torch.device, study: optuna.Study) -> int:
    """``--workers auto``. On a CPU: one worker per core (what the CPU slots allow to train at once).
    On CUDA: from the peak memory earlier trials of this study measured (:func:`workers_for_memory`);
    a fresh study starts with one per card and its first trials measure. Untested on a GPU: none
    was lent to the session that wrote it."""
    if device.type != "cuda":
        return cpu_cores()
    peaks = [peak for t in study.get_trials(deepcopy=False) if (peak := TrialRecord.of_trial(t).gpu_peak_bytes)]
    return workers_for_memory(torch.cuda.get_device_properties(0).total_memory, peaks, torch.cuda.device_count())


def worker_devices(device: torch.device, workers: int) -> list[str]:
    """With CUDA, worker i uses GPU i mod count; otherwise every worker uses the CPU."""
    if device.type == "cuda":
        n = torch.cuda.device_count()
        return [f"cuda:{i % n}" for i in range(workers)]
    return ["cpu"] * workers


