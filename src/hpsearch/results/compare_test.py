"""`hpsearch compare --test`: every compared trial evaluated once on the test split, counted.

The search keeps no weights, so each trial is retrained from what it recorded — its config
and its training seed, for the epochs it ran — which on the CPU, with the same thread count,
reproduces its run exactly; the table says for how many trials the retrained validation
score matched the search's (on a GPU, or with other threads, it can differ slightly). Then
the test split is read once, through the gate, after the look is written to the study.

Choosing a row by these test scores would be tuning on the test split: the looks are
counted with the study's other looks (``best --retrain``) and shown beside the table.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import optuna
import torch

from hpsearch.data import load_search_data, prepare
from hpsearch.fmt import summary
from hpsearch.results.compare import Comparison
from hpsearch.results.look import Look, look_at_test_split
from hpsearch.results.provenance import evidence
from hpsearch.store.queries import settings_of
from hpsearch.store.records import FINGERPRINT, ComparisonGroup, ComparisonRecord, TrialRecord, config_of, study_get
from hpsearch.study.config import TrialConfig
from hpsearch.study.rebuild import check_data_hash, ensure_data_code, ensure_specs
from hpsearch.train.fused import fit_together
from hpsearch.train.loop import fit, threads
from hpsearch.train.options import Speedups


def groups_on_test_split(study: optuna.Study, comparison: Comparison, *, data_root: Path, device: torch.device,
                         storage_url: str | None = None, studies_dir: Path | None = None,
                         speedups: Speedups = Speedups(),
                         say: Callable[[str], None] = lambda _m: None) -> ComparisonRecord:
    """Retrain every trial of ``comparison`` from its recorded seed, evaluate all once on the test
    split (one counted look, through the one door), record and return ``{"look", "groups": [...]}``."""
    with look_at_test_split(study, "compare --test", storage_url) as look:
        if look.killed_line:
            say(look.killed_line)
        return _test_groups(study, comparison, data_root, device, studies_dir, speedups, say, look)


def _test_groups(study: optuna.Study, comparison: Comparison, data_root: Path, device: torch.device,
                 studies_dir: Path | None, speedups: Speedups, say: Callable[[str], None],
                 look: Look) -> ComparisonRecord:
    settings = settings_of(study)
    trials = [t for g in comparison.groups for t in g.trials]
    stored_fp = study_get(study, FINGERPRINT, {})
    ensure_specs([config_of(t) for t in trials], settings, stored_fp, studies_dir)
    ensure_data_code(settings, stored_fp, studies_dir)
    warning = check_data_hash(settings, prepare(settings.data, data_root), False, f"study {study.study_name!r}")
    if warning:
        say(warning)
    data = load_search_data(settings.data, data_root, device, recorded=settings.train_digest, say=say,
                            files_hash=settings.data_hash)
    models: dict[int, list[torch.nn.Module]] = {}  # a trial with repeats trained one model per seed
    reproduced = 0
    for i, t in enumerate(trials, 1):
        config = TrialConfig.from_dict(config_of(t))
        done = TrialRecord.of_trial(t)
        epochs, seeds = done.epochs or settings.max_epochs, list(done.seeds)
        with threads(done.threads if device.type == "cpu" else None):  # the search's count: it reproduces
            if done.fused:  # its repeats trained as one model: retrained the same way, they reproduce
                results = fit_together([config] * len(seeds), data, epochs=epochs, seeds=seeds, device=device,
                                       task=settings.task, speedups=replace(speedups, fuse=True))
            else:
                results = [fit(config, data, epochs=epochs, seed=seed, device=device, task=settings.task,
                               speedups=speedups) for seed in seeds]
        again = statistics.fmean(float(getattr(r.history[-1], settings.metric)) for r in results)
        searched = float(t.values[0])
        reproduced += math.isclose(again, searched, rel_tol=1e-6, abs_tol=1e-9)
        models[t.number] = [r.model for r in results]
        say(f"retrained trial {t.number} ({i}/{len(trials)}) from its seed{'s' if len(seeds) > 1 else ''}: "
            f"{settings.metric}={again:.4f} (search: {searched:.4f})")

    test = look.read(settings.data, data_root, data.mean, data.std, device, trials=[t.number for t in trials])
    task = settings.task
    groups: list[ComparisonGroup] = []
    for g in comparison.groups:
        scores = [task.evaluate(m, test, data.info) for t in g.trials for m in models[t.number]]
        row: dict[str, Any] = {"params": g.params, "trials": [t.number for t in g.trials]}
        row.update({f"test_{k}": summary([s[k] for s in scores])  # type: ignore[misc]
                    for k in task.METRICS if scores and scores[0].get(k) is not None})
        groups.append(cast(ComparisonGroup, row))
    killed = [look.interrupted["look"]] if look.interrupted else []  # the marker this look replaces: kept here
    record: ComparisonRecord = {
        "look": look.number, "interrupted_looks": killed, "by": list(comparison.by), "metric": comparison.metric,
        "groups": groups, "reproduced": reproduced, "retrained": len(trials), "device": str(device)}
    record.update(cast(ComparisonRecord, evidence()))
    look.record(record)
    return record
