"""PNGs of what `hpsearch inspect` looks at inside a trained model: each convolution's feature
maps for a validation image (its channels tiled, one colour scale per layer) and a grid of
validation images with their true and predicted classes (matplotlib, as the other PNGs)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.store.paths import safe_name, write_atomically

if TYPE_CHECKING:
    from hpsearch.results.inspect import Attribution, FeatureMaps, NeuronMaps, Predictions


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _plt().close(fig)
    return write_atomically(path, buf.getvalue())


def _show(ax: Any, pixels: Any) -> None:
    img = pixels.transpose(1, 2, 0)
    ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None)
    ax.axis("off")


def feature_map_pngs(study: str, trial: int, maps: list[FeatureMaps], folder: Path) -> list[Path]:
    """One PNG per (image, convolution): the image, then every channel of the layer's output."""
    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fm in maps:
        for i, (name, act) in enumerate(fm.layers, 1):
            c = act.shape[0]
            cols = math.ceil(math.sqrt(c))
            rows = math.ceil(c / cols)
            fig, axes = plt.subplots(rows, cols + 1, figsize=(1.1 * (cols + 1) + 0.8, 1.1 * rows + 0.7), dpi=100,
                                     squeeze=False)
            for ax in axes.flat:
                ax.axis("off")
            _show(axes[0][0], fm.pixels)
            axes[0][0].set_title("input", fontsize=7)
            lo, hi = float(act.min()), float(act.max())  # one colour scale for the whole layer
            shown = None
            for ch in range(c):
                ax = axes[ch // cols][ch % cols + 1]
                shown = ax.imshow(act[ch], cmap="viridis", vmin=lo, vmax=hi)
            if shown is not None:
                fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8)
            fig.suptitle(f"{study} trial {trial}: layer {name} ({c} channels of {act.shape[1]}×{act.shape[2]}) "
                         f"for validation image {fm.row} ({fm.label})", fontsize=8)
            written.append(_save(fig, folder / f"{safe_name(study)}-trial{trial}-val{fm.row}-{i:02d}-layer-"
                                                f"{safe_name(name)}.png"))
    return written


def predictions_png(study: str, trial: int, p: Predictions, path: Path, cols: int = 10) -> Path:
    """The images in a grid, each titled with its true class and the model's top-k (red: wrong)."""
    plt = _plt()
    n = len(p.rows)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 2.4 * rows + 0.4), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j in range(n):
        ax = axes[j // cols][j % cols]
        _show(ax, p.pixels[j])
        best = p.top[j][0][0]
        lines = [f"true {p.truth[j]}"] + [f"{c} {100 * v:.0f}%" for c, v in p.top[j]]
        ax.set_title("\n".join(lines), fontsize=6, color="black" if best == p.truth[j] else "red")
    right = sum(p.top[j][0][0] == p.truth[j] for j in range(n))
    fig.suptitle(f"{study} trial {trial}: {n} validation images, {right} predicted right (top-k probabilities)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=1.2)  # room for four title lines above each image
    return _save(fig, path)


def _overlays(pixels: Any, first: str, panels: list[tuple[str, Any]], title: str, path: Path,
              cols: int) -> Path:
    """The image, then each map over it (hot: what raised the score or the neuron), ``cols`` a row."""
    plt = _plt()
    n = 1 + len(panels)
    cols = min(n, cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.4 * rows + 0.2), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _show(axes[0][0], pixels)
    axes[0][0].set_title(first, fontsize=8)
    for k, (name, m) in enumerate(panels, 1):
        ax = axes[k // cols][k % cols]
        _show(ax, pixels)
        ax.imshow(m, cmap="inferno", alpha=0.6, vmin=0, vmax=float(m.max()) or 1.0)
        ax.set_title(name, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def attribution_pngs(study: str, trial: int, found: list[Attribution], folder: Path) -> list[Path]:
    """One PNG per image: the image, then each method's map over it, in one row."""
    folder.mkdir(parents=True, exist_ok=True)
    return [_overlays(a.pixels, f"input (true {a.label})", list(a.maps.items()),
                      f"{study} trial {trial}: why class {a.target}, validation image {a.row}",
                      folder / f"{safe_name(study)}-trial{trial}-val{a.row}-attributions.png", cols=1 + len(a.maps))
            for a in found]


def neuron_pngs(study: str, trial: int, found: list[NeuronMaps], folder: Path) -> list[Path]:
    """One PNG per image: the image, then each chosen neuron's guided backpropagation over it."""
    folder.mkdir(parents=True, exist_ok=True)
    return [_overlays(nm.pixels, f"input ({nm.label})",
                      [(f"channel {ch} at ({y},{x}): {act:.2f}", m) for ch, y, x, act, m in nm.neurons],
                      f"{study} trial {trial}: guided backpropagation of the {len(nm.neurons)} strongest neurons "
                      f"of layer {nm.layer}, validation image {nm.row}",
                      folder / f"{safe_name(study)}-trial{trial}-val{nm.row}-neurons.png", cols=6)
            for nm in found]
