"""Checkpoints that rebuild their model with nothing else (nanoGPT's rule).

A checkpoint holds the weights, the model spec by its registered name, the whole trial
config, the data facts (shape, classes, normalisation), provenance, and — for a spec the
user defined — that spec's source code. :func:`load_checkpoint` rebuilds the model in any
process. Format 1 (hpsearch 0.1: ``"model": "cnn"`` and a name-less CNN config) still loads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpsearch.errors import ModelError
from hpsearch.models import ModelSpec, build, spec_from_dict
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


def load_checkpoint(path: Path | str, *, trust_code: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a retrained model from its checkpoint alone: ``(model in eval mode, checkpoint)``.

    The weights are read with ``weights_only=True``. A model spec the user defined comes with
    its module's source, which is imported to rebuild it — running that code, as importing
    the study module would. For a checkpoint from someone you do not trust, pass
    ``trust_code=False``: such a checkpoint is then refused (built-in specs still load).
    """
    path = Path(path)
    ckpt = _read(path)
    code = ckpt.get("code")
    if code and code["module"] not in sys.modules:
        if not trust_code:
            raise ModelError(f"{path}: its model {code['class']} is defined by code stored in the checkpoint "
                             f"(module {code['module']}); load it with trust_code=True to run that code")
        install(code)
    spec = spec_from_dict(_spec_dict(ckpt))
    model = build(spec, _Info(shape_of(ckpt), ckpt["dataset"]["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
