"""`hpsearch inspect`: look inside a trial's model — its layers, for now.

A trial is rebuilt from what the study stored (its config and spec; a spec the user wrote is
imported from the study module, as a retrain imports it) and measured on one blank image of the
study's input size: each layer's output shape, its parameters (trainable and frozen) and its
forward FLOPs (:func:`hpsearch.models.layers`). No weights and no image of any split are read:
shapes and counts do not depend on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpsearch.errors import BadOption, HpsearchError
from hpsearch.models import Layer, layers
from hpsearch.store.queries import best_trial, settings_of
from hpsearch.store.records import FINGERPRINT, config_of, study_get
from hpsearch.study.config import TrialConfig
from hpsearch.study.rebuild import ensure_specs


@dataclass(frozen=True)
class LayerTable:
    """A trial's model, layer by layer, with the totals the search recorded for it."""

    study: str
    trial: int
    chosen: str  # why this trial: "the best trial", "--trial 7"
    model: dict[str, Any]  # the spec, as stored
    input: tuple[int, ...]  # one image: (C, H, W)
    rows: list[Layer]

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "trial": self.trial, "chosen": self.chosen, "model": self.model,
                "input": list(self.input), "params": self.params, "trainable": self.trainable,
                "frozen": self.params - self.trainable, "flops": self.flops,
                "layers": [r.to_dict() for r in self.rows]}


def layer_table(study: optuna.Study, trial: int | None = None, studies_dir: Path | None = None,
                allow_module_change: bool = False) -> LayerTable:
    """Trial ``trial``'s model (default: the study's answer, :func:`best_trial`), layer by layer."""
    settings = settings_of(study)
    chosen = _trial(study, trial)
    try:
        stored = config_of(chosen)
    except KeyError:
        raise HpsearchError(f"trial {chosen.number} has no recorded config (it was rejected or failed before "
                            "training); `hpsearch trials` lists the others") from None
    ensure_specs([stored], settings, study_get(study, FINGERPRINT, {}), studies_dir, allow_module_change)
    config = TrialConfig.from_dict(stored)
    info = settings.data.info
    return LayerTable(study.study_name, chosen.number, "the best trial" if trial is None else f"--trial {trial}",
                      config.model.to_dict(), tuple(info.shape), layers(config.model, info))


def _trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    if number is None:
        return best_trial(study)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise BadOption(f"--trial {number}: study {study.study_name!r} has trials 0–{len(trials) - 1}")
    return trials[number]


@dataclass
class Trained:
    """A trial's model with weights, and the training split it is looked at with."""

    trial: int
    model: Any  # torch.nn.Module in eval mode
    data: Any  # hpsearch.data.SearchData: validation images come from here
    how: str  # where the weights came from, said to the user


def trained(study: optuna.Study, trial: int | None, data_root: Path, device: Any, *,
            checkpoint: Path | None = None, studies_dir: Path | None = None,
            say: Callable[[str], None] = lambda _m: None,
            check: Callable[[Any], object] | None = None) -> Trained:
    """The weights of a retrain checkpoint (``checkpoint``), else trial ``trial`` (default: the best)
    trained again from its recorded seed for its recorded epochs — the run the search did, which
    reproduces on the same device and threads (its validation score is said beside the search's).
    ``check(data)`` runs once the data is loaded, before any training (a bad ``--images`` fails there)."""
    from hpsearch.data import load_search_data
    from hpsearch.results.checkpoints import load_checkpoint
    from hpsearch.store.records import TrialRecord
    from hpsearch.train.loop import fit, threads

    settings = settings_of(study)
    data = load_search_data(settings.data, data_root, device, recorded=settings.train_digest,
                            files_hash=settings.data_hash)
    if check is not None:
        check(data)
    if checkpoint is not None:
        model, ckpt = load_checkpoint(checkpoint, studies_dir=studies_dir)
        if ckpt.get("study") not in (None, study.study_name):
            raise BadOption(f"--checkpoint {checkpoint} is of study {ckpt['study']!r}, not {study.study_name!r}")
        return Trained(int(ckpt.get("trial", -1)), model.to(device).eval(), data,
                       f"weights from {checkpoint} (trial {ckpt.get('trial')}, seed {ckpt.get('seed')})")
    chosen = _trial(study, trial)
    try:
        stored = config_of(chosen)
    except KeyError:
        raise HpsearchError(f"trial {chosen.number} has no recorded config; `hpsearch trials` lists the others") from None
    ensure_specs([stored], settings, study_get(study, FINGERPRINT, {}), studies_dir)
    done = TrialRecord.of_trial(chosen)
    epochs = done.epochs or TrialConfig.from_dict(stored).epochs_in(settings.max_epochs)
    seed = done.seeds[0] if done.seeds else 0
    say(f"training trial {chosen.number} again from its recorded seed {seed} for {epochs} epochs "
        "(search trials keep no weights; --checkpoint uses a retrained model's)")
    with threads(done.threads if str(device) == "cpu" else None):  # the search's count: it reproduces
        result = fit(TrialConfig.from_dict(stored), data, epochs=epochs, seed=seed, device=device, task=settings.task)
    again = float(getattr(result.history[-1], settings.metric))
    searched = f"{chosen.values[0]:.4f}" if chosen.values else "—"
    return Trained(chosen.number, result.model.eval(), data,
                   f"trial {chosen.number} trained again from seed {seed}: {settings.metric} {again:.4f} "
                   f"(search: {searched})")


def validation_rows(data: Any, images: str) -> list[int]:
    """``--images 3`` (the first three validation images) or ``--images 0,17,42`` (those)."""
    n = len(data.val)
    parts = [p.strip() for p in images.split(",") if p.strip()]
    try:
        rows = list(range(min(int(parts[0]), n))) if len(parts) == 1 else [int(p) for p in parts]
    except (ValueError, IndexError):
        raise BadOption(f"--images takes a count (3) or validation indices (0,17,42), got {images!r}") from None
    bad = [r for r in rows if not 0 <= r < n]
    if bad or not rows:
        raise BadOption(f"--images: the validation split has images 0–{n - 1}, got {images!r}")
    return rows


@dataclass(frozen=True)
class FeatureMaps:
    """Every convolution's output for one validation image (its channels, one image each)."""

    row: int  # the validation image
    label: str  # its class
    pixels: Any  # uint8 C×H×W, as stored
    layers: list[tuple[str, Any]]  # (layer name, float32 numpy C×H×W), in forward order


def feature_maps(t: Trained, rows: list[int]) -> list[FeatureMaps]:
    """Forward hooks on every ``Conv2d`` of the model: what each one outputs for each image."""
    import torch

    convs = [(name, m) for name, m in t.model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise HpsearchError("this model has no convolution layers: feature maps are the outputs of convolutions "
                            "(an MLP has none); `hpsearch inspect` shows its layers")
    out = []
    for row in rows:
        seen: dict[str, Any] = {}
        def keep(name: str, seen: dict[str, Any] = seen) -> Callable[..., None]:
            def hook(_m: Any, _i: Any, o: Any) -> None:  # returns None: a hook's return value replaces the output
                seen.setdefault(name, o[0].detach().cpu())
            return hook
        handles = [m.register_forward_hook(keep(name)) for name, m in convs]
        try:
            with torch.no_grad():
                t.model(t.data.val.batch(torch.tensor([row], device=t.data.val.device)))
        finally:
            for h in handles:
                h.remove()
        y = t.data.val.y[row]
        label = t.data.info.classes[int(y)] if y.ndim == 0 else "(mask)"
        out.append(FeatureMaps(row, label, t.data.val.pixels(slice(row, row + 1))[0].numpy(),
                               [(name, seen[name].float().numpy()) for name, _ in convs if name in seen]))
    return out


@dataclass(frozen=True)
class Predictions:
    """Validation images with their true class, the model's prediction and its top-k probabilities."""

    rows: list[int]
    pixels: Any  # uint8 N×C×H×W
    truth: list[str]
    top: list[list[tuple[str, float]]]  # per image: (class, probability), best first


def predictions(t: Trained, n: int, k: int = 3) -> Predictions:
    """The first ``n`` validation images (a classify study: other tasks have no class to predict)."""
    import torch

    if t.data.val.y.ndim != 1:
        raise HpsearchError("a prediction grid shows classes: this study's targets are masks or images; its report "
                            "shows the retrained model's outputs")
    rows = list(range(min(n, len(t.data.val))))
    with torch.no_grad():
        logits = t.model(t.data.val.batch(torch.tensor(rows, device=t.data.val.device))).float().cpu()
    probs = logits.softmax(1)
    k = min(k, probs.shape[1])
    values, index = probs.topk(k, dim=1)
    classes = t.data.info.classes
    return Predictions(rows, t.data.val.pixels(slice(0, len(rows))).numpy(),
                       [classes[int(c)] for c in t.data.val.y[rows].cpu()],
                       [[(classes[int(i)], float(v)) for v, i in zip(vs, ix)] for vs, ix in zip(values, index)])


ATTRIBUTIONS = ("saliency", "guided-backprop", "integrated-gradients", "grad-cam")


@dataclass(frozen=True)
class Attribution:
    """What made the model score one class for one validation image, by each method (H×W maps)."""

    row: int
    label: str  # its true class
    target: str  # the class explained (default: the predicted one)
    pixels: Any  # uint8 C×H×W
    maps: dict[str, Any]  # method → float32 numpy H×W (channels summed: |attribution| for gradients)


def attributions(t: Trained, rows: list[int], methods: list[str], target: str | None = None) -> list[Attribution]:
    """Captum's Saliency, GuidedBackprop, IntegratedGradients (from a black image) and LayerGradCam
    (on the last convolution, upsampled to the image) for each image's predicted class, or for
    ``target``. A classify model only: a score to explain needs a class."""
    import copy

    import torch
    from captum.attr import GuidedBackprop, IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

    unknown = [m for m in methods if m not in ATTRIBUTIONS]
    if unknown:
        raise BadOption(f"--attributions: no method {unknown[0]!r}; choose from {', '.join(ATTRIBUTIONS)}")
    if t.data.val.y.ndim != 1:
        raise HpsearchError("attributions explain a class score, and this study's targets are masks or images; "
                            "--feature-maps shows what its layers respond to")
    classes = list(t.data.info.classes)
    if target is not None and target not in classes:
        raise BadOption(f"--target {target!r}: the classes are {', '.join(classes)}")
    # Captum hooks every ReLU (guided backprop) and backpropagates through the model: a copy with
    # ReLUs that do not work in place, so the inspected model itself is left as it was
    model = copy.deepcopy(t.model).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if "grad-cam" in methods and not convs:
        raise HpsearchError("grad-cam weighs the last convolution's channels, and this model has none; "
                            "saliency, guided-backprop and integrated-gradients work for any model")
    out = []
    for row in rows:
        x = t.data.val.batch(torch.tensor([row], device=t.data.val.device)).requires_grad_(True)
        with torch.no_grad():
            predicted = int(model(x).argmax(1))
        c = classes.index(target) if target is not None else predicted
        maps: dict[str, Any] = {}
        for method in methods:
            if method == "saliency":
                a = Saliency(model).attribute(x, target=c, abs=True)
            elif method == "guided-backprop":
                a = GuidedBackprop(model).attribute(x, target=c).abs()
            elif method == "integrated-gradients":
                a = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=c, n_steps=32).abs()
            else:
                cam = LayerGradCam(model, convs[-1]).attribute(x, target=c, relu_attributions=True)
                a = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
            maps[method] = a.detach().sum(1)[0].float().cpu().numpy()
        y = int(t.data.val.y[row])
        out.append(Attribution(row, classes[y], classes[c], t.data.val.pixels(slice(row, row + 1))[0].numpy(), maps))
    return out


@dataclass(frozen=True)
class NeuronMaps:
    """Guided backpropagation of single neurons of the last convolution, for one image."""

    row: int
    label: str
    layer: str  # the convolution's name
    pixels: Any  # uint8 C×H×W
    neurons: list[tuple[int, int, int, float, Any]]  # (channel, y, x, activation, H×W map), strongest first


def neurons(t: Trained, rows: list[int], n: int) -> list[NeuronMaps]:
    """For each image, the ``n`` channels of the last convolution that respond most to it (each at
    its strongest position), and what in the image drives that neuron: Captum's NeuronGuidedBackprop."""
    import copy

    import torch
    from captum.attr import NeuronGuidedBackprop

    model = copy.deepcopy(t.model).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise HpsearchError("this model has no convolution layers, whose neurons --neurons explains; "
                            "--attributions saliency works for any model")
    name, layer = convs[-1]
    out = []
    for row in rows:
        x = t.data.val.batch(torch.tensor([row], device=t.data.val.device)).requires_grad_(True)
        seen: list[Any] = []

        def keep(_m: Any, _i: Any, o: Any, seen: list[Any] = seen) -> None:  # None: the output stays as it is
            seen.append(o.detach())
        handle = layer.register_forward_hook(keep)
        try:
            with torch.no_grad():
                model(x)
        finally:
            handle.remove()
        act = seen[0][0]  # C×H×W (the first call, should the layer run twice)
        peak = act.flatten(1).max(1)
        picked = peak.values.argsort(descending=True)[:n].tolist()
        found = []
        for ch in picked:
            where = int(peak.indices[ch])
            y, xx = divmod(where, act.shape[2])
            a = NeuronGuidedBackprop(model, layer).attribute(x, neuron_selector=(ch, y, xx))
            found.append((ch, y, xx, float(act[ch, y, xx]), a.detach().abs().sum(1)[0].float().cpu().numpy()))
        target = t.data.val.y[row]
        label = t.data.info.classes[int(target)] if target.ndim == 0 else "(mask)"
        out.append(NeuronMaps(row, label, name, t.data.val.pixels(slice(row, row + 1))[0].numpy(), found))
    return out
