"""Study names and output files on disk: every path hpsearch derives stays where it was meant to.

A study name becomes a folder (``runs/STUDY/``) and a file name (``STUDY-report.html``), so
``--name '../../x'`` once wrote checkpoints outside ``runs/`` and a report outside the working
folder. Names hpsearch creates must be plain (:func:`check_name`). A name that another tool
stored in a shared database can be anything, so paths are built from :func:`safe_name`,
which maps any name to one plain path component.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

from hpsearch.errors import BadStudyName, UnsafePath

# Letters, digits, '.', '_', '-'; no leading '.' (hidden, '..') or '-' (read as an option).
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_name(name: str) -> str:
    """``name`` if hpsearch may create a study under it, else one line saying what is allowed."""
    if not PLAIN_NAME.fullmatch(name):
        raise BadStudyName(f"study name {name!r} is not allowed: use up to 128 letters, digits, '.', '_' "
                         "and '-', not starting with '.' or '-'; pass --name NEW_NAME")
    return name


def safe_name(name: str) -> str:
    """One plain path component for any study name: the name itself when it is plain, else its
    plain characters plus a hash of the original (two different names never share a path)."""
    if PLAIN_NAME.fullmatch(name):
        return name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".-")[:64] or "study"
    return f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def check_output(path: Path) -> Path:
    """The file to write for ``--out PATH``: refuse a target that exists and is not a regular
    file (``/dev/full``, a directory, a FIFO) and a folder that does not exist. A symlink to a
    regular file resolves to that file, so the link survives the write."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        if not target.parent.is_dir():
            raise UnsafePath(f"cannot write {path}: folder {target.parent} does not exist") from None
        return target
    if not stat.S_ISREG(mode):
        raise UnsafePath(f"refusing to replace {path}: it exists and is {_kind(mode)}, not a regular file; "
                         "pass --out FILE.html")
    return target


def write_atomically(path: Path, text: str | bytes) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``:
    readers see the old file or the whole new one, never half of it, and an interrupted write
    leaves no stray file. Returns the file written (see :func:`check_output`)."""
    target = check_output(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"
