"""Every seed hpsearch uses is derived from the study seed, so a study is reproducible.

``derive_seed(study_seed, "trial", 7)`` is trial 7's training seed; retrain seeds use a
different tag, so they are fresh (never a seed the search already trained with).
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(study_seed: int, tag: str, *numbers: int) -> int:
    """A 31-bit seed from the study seed, a purpose tag and any integers (stable everywhere)."""
    entropy = [int(study_seed) & 0xFFFFFFFF, zlib.crc32(tag.encode()), *[int(n) & 0xFFFFFFFF for n in numbers]]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def trial_seed(study_seed: int, trial_number: int) -> int:
    return derive_seed(study_seed, "trial", trial_number)


def retrain_seeds(study_seed: int, trial_number: int, count: int, *, round_: int = 0) -> list[int]:
    """Seeds for re-scoring/retraining a trial; ``round_`` > 0 (a --force rerun) gives new ones."""
    return [derive_seed(study_seed, "retrain", trial_number, round_, i) for i in range(count)]
