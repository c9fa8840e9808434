"""A study module's fingerprint: its source hash and the search space it declares.

The space is read by sampling it, not by parsing code: the module's space function runs on
throwaway in-memory trials (no training) and we record every distribution it asks for. Many
random probes reach the conditional branches too (momentum only under SGD, and so on).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import optuna

from hpsearch.study.config import TrialConfig
from hpsearch.study.declaration import Study

PROBES = 64


def _sampled(study: Study, probes: int) -> Iterator[tuple[TrialConfig, optuna.trial.FrozenTrial]]:
    """The space's configs over ``probes`` seeded random trials of a throwaway in-memory study."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.ERROR)
    try:
        probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(probes):
            trial = probe.ask()
            config = study.space(trial)
            if not isinstance(config, TrialConfig):
                raise TypeError(f"the space function must return a TrialConfig, got {type(config).__name__}")
            yield config, probe.tell(trial, 0.0)
    finally:
        optuna.logging.set_verbosity(level)


def space_signature(study: Study, probes: int = PROBES) -> dict[str, str]:
    """``{param: distribution as JSON}`` over ``probes`` seeded random samples of the space."""
    seen: dict[str, str] = {}
    for i, (config, frozen) in enumerate(_sampled(study, probes)):
        if i == 0:
            _check_builds(config, study)
        for name, dist in frozen.distributions.items():
            seen[name] = optuna.distributions.distribution_to_json(dist)
    return dict(sorted(seen.items()))


def fetch_models(study: Study, probes: int = PROBES) -> None:
    """Call ``fetch`` on every distinct model spec the probes sample: pretrained weights are
    downloaded once here, by the supervisor, or named as missing before any trial starts."""
    seen = set()
    for config, _ in _sampled(study, probes):
        key = repr(config.model)
        if key not in seen:
            seen.add(key)
            config.model.fetch()


def _check_builds(config: TrialConfig, study: Study) -> None:
    """Build one sampled model (a throwaway CPU copy), so a broken ``build`` fails before any
    study row exists rather than as three failed trials (an architecture this data rules
    out is fine here: such trials are pruned with the reason)."""
    from hpsearch.errors import InfeasibleModel
    from hpsearch.models import measure

    try:
        measure(config.model, study.info)
    except InfeasibleModel:
        return
    _check_task(config, study)


def _check_task(config: TrialConfig, study: Study) -> None:
    """The sampled model's output against the study's task (a cae under classify, a CNN under
    segment), and its augmentation, so a mismatch is one line before any trial, not three crashes."""
    import torch

    from hpsearch.models import build

    task = study.task
    task.check_augment(config.augment)
    c, h, w = study.info.shape
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model = build(config.model, study.info).eval()
        x = torch.zeros(2, c, h, w)
        y = torch.zeros(2, h, w, dtype=torch.long) if task.needs_masks else torch.zeros(2, dtype=torch.long)
        task.check_output(model(x), x, y)


def fingerprint(study: Study, source_sha256: str) -> dict[str, Any]:
    return {"source_sha256": source_sha256, "space": space_signature(study)}


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints (empty when they match)."""
    out = []
    a, b = stored.get("space", {}), current.get("space", {})
    for name in sorted(set(a) | set(b)):
        if name not in b:
            out.append(f"parameter {name} removed")
        elif name not in a:
            out.append(f"parameter {name} added")
        elif a[name] != b[name]:
            out.append(f"parameter {name} changed: {_short(a[name])} → {_short(b[name])}")
    if not out and stored.get("source_sha256") != current.get("source_sha256"):
        out.append("the module's source changed (same search space)")
    return out


def _short(dist_json: str) -> str:
    d = optuna.distributions.json_to_distribution(dist_json)
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return "{" + ", ".join(map(str, d.choices)) + "}"
    low, high = getattr(d, "low", "?"), getattr(d, "high", "?")
    return f"[{low}, {high}]" + (" log" if getattr(d, "log", False) else "")
