"""``torchvision`` backbones and ``encoder`` (a trunk from one of our checkpoints), fine-tuned.

Both wrap the network in :class:`~hpsearch.models._transfer.Transferred`: a new head for
the study's classes, the first convolution adapted to the data's channels, small images
resized on the device, and a freeze strategy with a backbone learning-rate multiplier.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import ModelError
from hpsearch.models._options import FREEZES, INITS, check
from hpsearch.models._spec import ModelInfo, ModelSpec, register_model, seeded, spec_from_dict

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpsearch.models._transfer import Transferred


@dataclass(frozen=True)
class _Finetune(ModelSpec):
    """The fine-tuning knobs both transfer specs share (not registered itself)."""

    freeze: str = "none"  # none, head_only, first_k, gradual (see models._transfer)
    freeze_k: int = 1  # first_k: how many stages from the bottom stay frozen
    unfreeze_every: int = 1  # gradual: epochs between unfreezing one more stage
    backbone_lr: float = 1.0  # trunk lr = this × the study's lr (discriminative lr)
    head_hidden: tuple[int, ...] = ()  # dense layers of the new head before the classes: (512,) is FC512 → act
    head_activation: str = "relu"
    head_dropout: float = 0.0  # after each hidden dense layer of the head

    def _check_finetune(self) -> None:
        from hpsearch.models._options import ACTIVATIONS

        check(self.freeze in FREEZES, f"freeze must be one of {', '.join(FREEZES)}, got {self.freeze!r}")
        check(all(isinstance(h, int) and h >= 1 for h in self.head_hidden),
              f"head_hidden must be widths >= 1, got {self.head_hidden!r}")
        check(self.head_activation in ACTIVATIONS,
              f"head_activation must be one of {', '.join(ACTIVATIONS)}, got {self.head_activation!r}")
        check(0 <= self.head_dropout < 1, f"head_dropout must be in [0, 1), got {self.head_dropout}")
        check(self.freeze_k >= 0 and self.unfreeze_every >= 1, "freeze_k must be >= 0 and unfreeze_every >= 1")
        check(self.backbone_lr >= 0, f"backbone_lr must be >= 0, got {self.backbone_lr}")

    def param_groups(self, model: nn.Module, lr: float) -> list[dict[str, Any]]:
        from hpsearch.models._transfer import param_groups

        return param_groups(model, lr, self.backbone_lr)  # type: ignore[arg-type]

    def on_epoch(self, model: nn.Module, epoch: int) -> None:
        from hpsearch.models._transfer import apply_freeze, frozen_stages

        m: Transferred = model  # type: ignore[assignment]
        apply_freeze(m, frozen_stages(self.freeze, len(m.stages), epoch, self.freeze_k, self.unfreeze_every))


@register_model("torchvision")
@dataclass(frozen=True)
class Torchvision(_Finetune):
    """Any classification network ``torchvision.models`` builds, by name, with a new head.

    ``weights``: ``None`` (random init, always works), a torchvision weights name for this
    architecture (``"DEFAULT"``, ``"IMAGENET1K_V1"``, …) read from torch's hub cache, or the
    path of a saved ``state_dict``. Images smaller than ``min_size`` are resized per batch on
    the device (bilinear), which keeps the resident data at its own size.
    """

    arch: str = "resnet18"
    weights: str | None = None
    min_size: int = 32
    init: str = "default"  # of the whole network without weights, of the new head with them
    init_seed: int | None = None

    def __post_init__(self) -> None:
        self._check_finetune()
        check(self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        check(self.min_size >= 0, f"min_size must be >= 0, got {self.min_size}")

    def build(self, info: ModelInfo) -> nn.Module:
        import torchvision

        from hpsearch.models._layers import initialise
        from hpsearch.models._transfer import Transferred, adapt_first_conv

        known = torchvision.models.list_models(module=torchvision.models)
        if self.arch not in known:
            raise ModelError(f"torchvision has no classification model {self.arch!r}; "
                             f"e.g. {', '.join(a for a in known if a.startswith(('resnet', 'mobilenet', 'efficientnet_b0')))}")
        kw = {"aux_logits": False, "init_weights": True} if self.arch in ("googlenet", "inception_v3") else {}
        floor, exact = _input_sizes(self.arch)
        with seeded(self.init_seed):
            net = torchvision.models.get_model(self.arch, weights=None, **kw)
            adapt_first_conv(net, info.shape[0])
            exact = getattr(net, "image_size", None) and (net.image_size, net.image_size) or exact  # ViT
            model = Transferred(net, info.num_classes, max(self.min_size, floor), exact, tuple(self.head_hidden),
                                self.head_activation, self.head_dropout)
            initialise(model if self.weights is None else model.head, self.init)
        return model

    def prepare(self, model: nn.Module) -> None:
        if self.weights is not None:
            from hpsearch.models._transfer import load_trunk

            load_trunk(model, self.state_dict(), f"weights {self.weights}")  # type: ignore[arg-type]
        self.on_epoch(model, 1)

    def weights_file(self) -> tuple[Path, str | None]:
        """Where the weights are read from, and the URL they come from (None for a user file)."""
        assert self.weights is not None
        if os.sep in self.weights or "/" in self.weights or self.weights.endswith((".pt", ".pth")):
            return Path(self.weights).expanduser(), None
        import torch
        import torchvision

        try:
            enum = torchvision.models.get_model_weights(self.arch)
            url = enum[self.weights].url if self.weights != "DEFAULT" else enum.DEFAULT.url
        except (KeyError, ValueError):
            raise ModelError(f"{self.arch} has no weights {self.weights!r}; use a file path, None, or one of "
                             f"{', '.join(['DEFAULT'] + [w.name for w in torchvision.models.get_model_weights(self.arch)])}") from None
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url

    def fetch(self) -> None:
        if self.weights is None:
            return
        path, url = self.weights_file()
        if not path.is_file() and url is not None:
            _download(url, path)
        if not path.is_file():
            where = f"copy it from {url} there (or set TORCH_HOME)" if url else "check the path"
            raise ModelError(f"{self.arch} weights: {path} does not exist; {where}, or use weights=None")

    def state_dict(self) -> dict[str, torch.Tensor]:
        import torch

        self.fetch()
        path, _ = self.weights_file()
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state) if isinstance(state, dict) else state


def _input_sizes(arch: str) -> tuple[int, tuple[int, int] | None]:
    """The smallest input torchvision documents for ``arch`` (its weights' ``min_size``), and the
    one size an architecture takes where it takes only one (MaxViT's window partition)."""
    import torchvision

    try:
        low = torchvision.models.get_model_weights(arch).DEFAULT.meta.get("min_size", (1, 1))
    except (KeyError, ValueError, AttributeError):
        low = (1, 1)
    return max(low), (tuple(low) if arch.startswith("maxvit") else None)


def _download(url: str, path: Path) -> None:
    """Fetch into torch's hub cache when online; offline the caller says which file is missing."""
    import torch

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except Exception:  # noqa: BLE001 - any network failure means "offline": the caller names the file
        pass
    finally:
        socket.setdefaulttimeout(old)


@register_model("encoder")
@dataclass(frozen=True)
class Encoder(_Finetune):
    """The trunk of a model we trained (a retrain checkpoint), with a new head.

    ``trunk`` is the source model's spec and data shape, copied from the checkpoint when the
    spec is made (:func:`hpsearch.study.space.encoder_from`), so a model trained from it rebuilds
    without the source file; only :meth:`prepare` reads the source weights.
    """

    encoder_from: str = ""  # path of the source checkpoint
    trunk: dict[str, Any] = field(default_factory=dict)  # {"model": spec dict, "shape": [C, H, W]}
    init: str = "default"  # of the new head
    init_seed: int | None = None
    freeze: str = "head_only"
    pretrained: bool = True  # False: the same architecture from a random init (the "from scratch" arm)

    def __post_init__(self) -> None:
        self._check_finetune()
        check(bool(self.encoder_from), "encoder_from must name a checkpoint; build the spec with "
                                       "hpsearch.space.encoder_from(path)")
        check(self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}")

    @classmethod
    def of(cls, path: str | Path, **kw: Any) -> Encoder:
        """The spec for ``path``'s trunk, reading the checkpoint's header (not its weights)."""
        from hpsearch.results.checkpoints import read_header

        header = read_header(Path(path))
        return cls(encoder_from=str(Path(path).resolve()),
                   trunk={"model": header["model"], "shape": header["shape"]}, **kw)

    def build(self, info: ModelInfo) -> nn.Module:
        from hpsearch.models._layers import initialise
        from hpsearch.models._spec import build
        from hpsearch.models._transfer import Transferred

        shape = tuple(self.trunk["shape"])
        if tuple(info.shape) != shape:
            raise ModelError(f"the encoder in {self.encoder_from} was trained on {'×'.join(map(str, shape))} "
                             f"images; this study's are {'×'.join(map(str, info.shape))}")
        with seeded(self.init_seed):
            source = spec_from_dict(self.trunk["model"])
            c, h, w = shape
            net = source.transfer_net(build(source, _Shape((c, h, w), 2)))  # class count is replaced by the new head
            model = Transferred(net, info.num_classes, hidden=tuple(self.head_hidden),
                                activation=self.head_activation, dropout=self.head_dropout)
            initialise(model.head, self.init)
        return model

    def fetch(self) -> None:
        if self.pretrained and not Path(self.encoder_from).is_file():
            raise ModelError(f"encoder_from: checkpoint {self.encoder_from} does not exist; retrain the source "
                             "study (hpsearch best STUDY --retrain) or fix the path")

    def prepare(self, model: nn.Module) -> None:
        from hpsearch.models._transfer import load_trunk
        from hpsearch.results.checkpoints import read_weights

        if self.pretrained:
            load_trunk(model, read_weights(Path(self.encoder_from)), self.encoder_from)  # type: ignore[arg-type]
        self.on_epoch(model, 1)


@dataclass(frozen=True)
class _Shape:
    shape: tuple[int, int, int]
    num_classes: int
