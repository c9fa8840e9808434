"""What an ``augment`` string may say, checked without torch (configs are read by commands that
never train): a name of the original set, or parts composed with ``+``, arguments in brackets."""

from __future__ import annotations

import re

NAMES = ("none", "flip", "pad_crop", "flip_crop", "rotation", "color_jitter")  # one name each, as stored since 0.1
# composable parts and how many numbers each takes (at most)
PARTS = {"flip": 0, "vflip": 0, "pad_crop": 0, "rotation": 1, "color_jitter": 3, "resized_crop": 1}


def parse(spec: str) -> list[tuple[str, tuple[float, ...]]]:
    """``"flip+color_jitter(0.2,0.2,0.2)"`` → ``[("flip", ()), ("color_jitter", (0.2, 0.2, 0.2))]``;
    a name of :data:`NAMES` alone → ``[]`` (it is looked up as it is); one clear ``ValueError`` else."""
    if spec in NAMES:
        return []
    out = []
    for term in (t.strip() for t in str(spec).split("+")):
        m = re.fullmatch(r"(\w+)(?:\(([^()]*)\))?", term)
        if m is None or m.group(1) not in PARTS:
            raise ValueError(f"augment must be one of {', '.join(NAMES)} or parts ({', '.join(PARTS)}) joined by '+' "
                             f"with numbers in brackets, e.g. 'flip+color_jitter(0.2,0.2,0.2)'; got {spec!r}")
        try:
            args = tuple(float(a) for a in m.group(2).split(",") if a.strip()) if m.group(2) else ()
        except ValueError:
            raise ValueError(f"augment {spec!r}: the arguments of {term!r} must be numbers") from None
        if len(args) > PARTS[m.group(1)]:
            raise ValueError(f"augment {spec!r}: {m.group(1)} takes at most {PARTS[m.group(1)]} number(s), "
                             f"got {len(args)}")
        out.append((m.group(1), args))
    return out
