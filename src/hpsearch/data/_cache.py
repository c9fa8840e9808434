"""Decode once: content hashes of data files and the tensor cache every worker reads.

Two things make a folder of images cheap to use many times:

* :func:`content_hash` — a SHA-256 over every file's bytes, remembered under a key built from
  the files' names, sizes and modification times (git's index does the same), so a second
  start stats the files instead of reading them all again, and any edit changes the key.
* :func:`cached` — the decoded, resized uint8 tensors written once as a ``torch.save`` file
  keyed by the source's spec and the content hash, built under a file lock (the first process
  decodes, the others wait and read) and read back memory-mapped, so workers on one machine
  share the pages.

The cache lives in ``.hpsearch-cache/`` beside the data, or under the data root when the
data's folder is read-only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CACHE_FOLDER = ".hpsearch-cache"
FORMAT = 1  # bump when what a cache file holds changes; old files are then simply not found

Decoded = dict[str, "torch.Tensor | list[str]"]


def cache_dir(data_folder: Path, data_root: Path | None = None) -> Path:
    """``DATA/.hpsearch-cache`` when it can be written, else a folder under the data root."""
    beside = data_folder / CACHE_FOLDER
    if _writable(beside) or (not beside.exists() and _writable(data_folder)):
        return beside
    from hpsearch.data._spec import default_data_root

    tag = hashlib.sha256(str(data_folder.resolve()).encode()).hexdigest()[:16]
    return (data_root or default_data_root()) / "cache" / f"{data_folder.name}-{tag}"


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def content_hash(files: Iterable[Path], base: Path, memo: Path) -> str:
    """SHA-256 over the relative names and bytes of ``files`` (sorted), memoised in ``memo``."""
    return hash_files(files, base, memo).digest


@dataclass(frozen=True)
class Hashed:
    """What :func:`hash_files` found: the digest over everything, and each file's own SHA-256
    (by relative name), which is what finds one image stored twice."""

    digest: str
    files: dict[str, str]


def hash_files(files: Iterable[Path], base: Path, memo: Path) -> Hashed:
    """:func:`content_hash`, with each file's digest. One pass over the bytes feeds both hashes;
    the memo (JSON, keyed by names, sizes and modification times) keeps both, so a second start
    only stats the files. A memo this version cannot read is ignored and written anew."""
    prefix = len(str(base).rstrip(os.sep)) + 1
    named = sorted((str(p)[prefix:].replace(os.sep, "/"), p) for p in files)  # relative names, no pathlib cost
    listing = hashlib.sha256()
    for rel, p in named:
        st = os.stat(p)
        listing.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    memo_file = memo / f"hash-{listing.hexdigest()[:32]}"
    try:
        kept = json.loads(memo_file.read_text())
        if set(kept["files"]) == {rel for rel, _ in named}:
            return Hashed(str(kept["digest"]), dict(kept["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or one written before per-file digests were kept
    h = hashlib.sha256()
    per_file: dict[str, str] = {}
    for rel, p in named:
        h.update(rel.encode() + b"\0")
        one = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                one.update(chunk)
        h.update(b"\0")
        per_file[rel] = one.hexdigest()
    hashed = Hashed(h.hexdigest(), per_file)
    try:
        text = json.dumps({"digest": hashed.digest, "files": per_file})
        _write_atomically(memo_file, lambda tmp: tmp.write_text(text))
    except OSError:
        pass  # a read-only place: hash again next time
    return hashed


def cache_key(spec: dict[str, Any], digest: str) -> str:
    """The file stem for one source's decoded data: its spec and its files' content."""
    blob = json.dumps({"format": FORMAT, "spec": spec}, sort_keys=True).encode()
    return f"{hashlib.sha256(blob).hexdigest()[:12]}-{digest[:16]}"


def cached(folder: Path, stem: str, split: str, build: Callable[[], dict[str, Decoded]]) -> Decoded:
    """The decoded ``split`` from ``folder/STEM-SPLIT.pt``; ``build()`` makes every split's file once.

    ``build`` returns ``{split: {"x": uint8 N×C×H×W, "y": int64 N, "classes": [...]}}`` for all
    the splits it decoded (a single folder cut into train and test decodes both at once).
    """
    import torch
    from filelock import FileLock

    path = folder / f"{stem}-{split}.pt"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f"{stem}.lock")):
            if not path.is_file():  # another process may have built it while we waited
                for name, part in build().items():
                    _write_atomically(folder / f"{stem}-{name}.pt", functools.partial(_save, part))
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def drop(folder: Path, stem: str) -> None:
    """Delete every split's cache file of ``stem`` and every content-hash memo in ``folder``: the
    next read hashes and decodes the files themselves. A memo only spares reading the files; once a
    cache is in doubt, the memo that named it is too (a forged one could vouch for changed files)."""
    for path in [*folder.glob(f"{stem}-*.pt"), *folder.glob("hash-*")]:
        path.unlink(missing_ok=True)


def seal_of(x: torch.Tensor, y: torch.Tensor) -> str:
    """SHA-256 of decoded images and targets (shapes, dtypes, bytes): what a study records of the
    training split it was created on, so a cache file changed behind its back is never trained on.
    Hashing reads the memory-mapped cache once."""
    import torch

    h = hashlib.sha256()
    for t in (x, y):
        h.update(f"{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _save(value: Any, path: Path) -> None:
    import torch

    torch.save(value, path)


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary file in the same folder and ``os.replace``: readers see the old
    file or the whole new one, never a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; others sharing the data folder must read the cache
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
