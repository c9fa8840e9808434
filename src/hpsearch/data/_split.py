"""Deterministic stratified splitting, done on label tensors (no sklearn, no pandas)."""

from __future__ import annotations

import torch


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (keep, held_out) with ``fraction`` of every class held out.

    Same labels + fraction + seed → same split on every machine and torch version that
    keeps ``torch.randperm`` stable on CPU; each class holds out ``round(fraction * n_c)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(labels, sorted=True).tolist():
        idx = torch.nonzero(labels == c, as_tuple=True)[0]
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_held = int(round(fraction * len(idx)))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return torch.sort(torch.cat(keep)).values, torch.sort(torch.cat(held)).values


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` indices with class proportions kept (for fast benchmark-sized searches)."""
    if n >= len(labels):
        return torch.arange(len(labels))
    keep, _ = stratified_split(labels, 1.0 - n / len(labels), seed)
    return keep
