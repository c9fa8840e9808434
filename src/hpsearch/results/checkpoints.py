"""Checkpoints that rebuild their model with nothing else (nanoGPT's rule).

A checkpoint holds the weights, the model spec by its registered name, the whole trial
config, the data facts (shape, classes, normalisation), provenance, and — for a spec the
user defined — that spec's source code. :func:`load_checkpoint` rebuilds the model in any
process. Format 1 (hpsearch 0.1: ``"model": "cnn"`` and a name-less CNN config) still loads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpsearch.errors import ModelError
from hpsearch.models import LEGACY_MODEL, ModelSpec, build, is_builtin, spec_class, spec_from_dict
from hpsearch.study.usercode import code_of, install

FORMAT = 2


def save(path: Path, model: nn.Module, spec: ModelSpec, fields: dict[str, Any]) -> None:
    """Write ``model``'s weights with ``spec`` (and its code) and the caller's ``fields``."""
    torch.save({
        "format": FORMAT,
        "model": spec.to_dict(),
        "code": code_of(type(spec)),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **fields,
    }, path)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file: say which
        raise ModelError(f"{path} is not a readable hpsearch checkpoint ({type(err).__name__}: {err})") from None


def _spec_dict(ckpt: dict[str, Any]) -> dict[str, Any]:
    if isinstance(ckpt.get("model"), dict):
        return ckpt["model"]
    return ckpt["config"]["model"]  # format 1: the CNN's fields, no name


def shape_of(ckpt: dict[str, Any]) -> tuple[int, int, int]:
    d = ckpt["dataset"]
    if "shape" in d:
        return tuple(d["shape"])
    return (d["channels"], d["size"], d["size"])


def read_header(path: Path) -> dict[str, Any]:
    """The model spec dict and input shape of a checkpoint (its weights stay on disk)."""
    ckpt = _read(path)
    return {"model": _spec_dict(ckpt), "shape": list(shape_of(ckpt)), "code": ckpt.get("code")}


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    return _read(path)["state_dict"]


class _Info:
    def __init__(self, shape: tuple[int, int, int], classes: list[str]) -> None:
        self.shape, self.classes = shape, tuple(classes)
        self.num_classes = len(classes)


def load_checkpoint(path: Path | str, *, trust_code: bool = False,
                    studies_dir: Path | str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a retrained model from its checkpoint alone: ``(model in eval mode, checkpoint)``.

    The weights are read with ``weights_only=True``, which runs no code. A built-in spec (``cnn``,
    ``resnet``, …) is rebuilt from hpsearch's own code and whatever code the file carries is
    never run. A spec the user defined comes with its module's source; importing it runs that
    code, so it is imported only when the caller vouches for it: the module is already imported
    here, or every stored source equals a module file the caller has (``studies_dir``, else
    ``$HPSEARCH_STUDIES`` or ``./studies``, then ``sys.path``) — the user's own code, moved — or
    ``trust_code=True``. Otherwise one line says how to trust it. What this does not protect
    against: a forged file whose stored code you then trust.
    """
    path = Path(path)
    ckpt = _read(path)
    spec_dict = _spec_dict(ckpt)
    code = ckpt.get("code")
    if code and not _builtin(spec_dict) and code["module"] not in sys.modules:
        if not (trust_code or _matches_local(code, studies_dir)):
            raise ModelError(
                f"{path}: its model {code['class']} is defined by code stored in the checkpoint (module "
                f"{code['module']}), which loading would run; if you trust where the file came from, pass "
                "load_checkpoint(path, trust_code=True), or put that study module in ./studies (or pass "
                "studies_dir=): a module whose source matches is trusted")
        install(code)
    spec = spec_from_dict(spec_dict)
    model = build(spec, _Info(shape_of(ckpt), ckpt["dataset"]["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def _builtin(spec_dict: dict[str, Any]) -> bool:
    try:
        return is_builtin(spec_class(str(spec_dict.get("name", LEGACY_MODEL))))
    except ModelError:
        return False  # not registered (yet): the stored code would register it


def _matches_local(code: dict[str, Any], studies_dir: Path | str | None) -> bool:
    """Every stored module's source equals a file the caller has: the study module (stored as
    ``hpsearch_study_NAME``, found as ``NAME.py`` in the studies folder) and its helpers."""
    folders = [Path(studies_dir) if studies_dir else Path(os.environ.get("HPSEARCH_STUDIES") or "studies"),
               *(Path(p or ".") for p in sys.path)]
    for name, entry in code["sources"].items():
        rel = Path(*name.removeprefix("hpsearch_study_").split("."))
        files = [f / rel / "__init__.py" if entry.get("package") else f / rel.with_suffix(".py") for f in folders]
        if not any(_same_text(f, entry["source"]) for f in files):
            return False
    return True


def _same_text(file: Path, source: str) -> bool:
    try:
        return file.is_file() and file.read_text() == source
    except (OSError, UnicodeDecodeError):
        return False
