"""Augmentation on whole batches of resident tensors: no PIL, no per-sample Python.

Each function takes a normalised ``N×C×H×W`` float batch and a ``torch.Generator`` on the
batch's device, so a given seed gives the same augmented batches every run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from hpsearch.data._augment_spec import parse

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _rand(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device)


def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    mask = _rand(len(x), g, x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def pad_crop(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Pad by ~1/8 of the side (edge values), then crop each image at its own random offset."""
    n, c, h, w = x.shape
    p = max(1, h // 8)
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    dy = torch.randint(0, 2 * p + 1, (n,), generator=g, device=x.device)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=g, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def flip_crop(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return pad_crop(flip(x, g), g)


def rotation(x: torch.Tensor, g: torch.Generator, degrees: float = 15.0) -> torch.Tensor:
    """Rotate each image by its own angle in ±``degrees`` (one batched ``grid_sample``)."""
    n = len(x)
    angle = (_rand(n, g, x.device) * 2 - 1) * math.radians(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    fill = x.amin(dim=(2, 3), keepdim=True)  # background of a normalised image
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def color_jitter(x: torch.Tensor, g: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Random brightness, contrast and (for RGB) saturation per image, then flip + crop."""
    n = len(x)
    shape = (n, 1, 1, 1)
    bright = (torch.rand(shape, generator=g, device=x.device) * 2 - 1) * strength
    contrast = 1 + (torch.rand(shape, generator=g, device=x.device) * 2 - 1) * strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    if x.shape[1] == 3:
        sat = 1 + (torch.rand(shape, generator=g, device=x.device) * 2 - 1) * strength
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * sat + gray
    return flip_crop(x, g)


def jitter(x: torch.Tensor, g: torch.Generator, brightness: float = 0.3, contrast: float = 0.3,
           saturation: float = 0.3) -> torch.Tensor:
    """torchvision's ColorJitter(brightness, contrast, saturation) on a normalised batch: each image
    its own factors, drawn in ±strength (saturation only for RGB). Nothing else (no flip, no crop)."""
    n = len(x)
    shape = (n, 1, 1, 1)
    if brightness:
        x = x + (torch.rand(shape, generator=g, device=x.device) * 2 - 1) * brightness
    if contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + (torch.rand(shape, generator=g, device=x.device) * 2 - 1) * contrast) + mean
    if saturation and x.shape[1] == 3:
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * (1 + (torch.rand(shape, generator=g, device=x.device) * 2 - 1) * saturation) + gray
    return x


def resized_crop(x: torch.Tensor, g: torch.Generator, scale: float = 0.8) -> torch.Tensor:
    """torchvision's RandomResizedCrop at the image's own size: each image a random box of
    ``scale``–100 % of its area and aspect 3:4–4:3, scaled back up (one batched ``grid_sample``)."""
    n = len(x)
    area = scale + (1 - scale) * _rand(n, g, x.device)
    ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * _rand(n, g, x.device))
    sx, sy = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    tx, ty = (_rand(n, g, x.device) * 2 - 1) * (1 - sx), (_rand(n, g, x.device) * 2 - 1) * (1 - sy)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def vflip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch top-bottom."""
    mask = _rand(len(x), g, x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(2), x)


# the parts of a composed augmentation ("flip+color_jitter(0.2,0.2,0.2)"); _augment_spec checks the string
PARTS: dict[str, Callable[..., torch.Tensor]] = {
    "flip": flip, "vflip": vflip, "pad_crop": pad_crop, "rotation": rotation, "color_jitter": jitter,
    "resized_crop": resized_crop,
}


def compose(spec: str) -> Augment | None:
    """An augmentation by name (one of :data:`AUGMENTS`, as stored since 0.1) or composed of parts
    applied left to right: ``"flip+color_jitter(0.2,0.2,0.2)"``, ``"rotation(15)+flip+resized_crop(0.8)"``.
    In a composition ``color_jitter`` is the jitter alone (the name alone also flips and crops, as it
    always did)."""
    if spec in AUGMENTS:
        return AUGMENTS[spec]
    parts = [(PARTS[name], args) for name, args in parse(spec)]

    def composed(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for fn, args in parts:
            x = fn(x, g, *args)
        return x
    return composed


AUGMENTS: dict[str, Augment | None] = {
    "none": None,
    "flip": flip,
    "pad_crop": pad_crop,
    "flip_crop": flip_crop,
    "rotation": rotation,
    "color_jitter": color_jitter,
}
