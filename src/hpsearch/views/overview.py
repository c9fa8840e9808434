"""`hpsearch data`'s output: a class table on the terminal, and PNGs of one sample per class and
of the class counts (matplotlib, as the dashboard's retrain PNGs are drawn)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from hpsearch.store.paths import safe_name, write_atomically

if TYPE_CHECKING:
    from hpsearch.results.overview import DataOverview


def terminal(console: Console, o: DataOverview) -> None:
    console.print(f"{o.study}: {o.dataset}, {'×'.join(map(str, o.shape))} images · {o.train_images:,} train / "
                  f"{o.val_images:,} validation (the training split as the search cuts it) · per-channel mean "
                  f"{', '.join(f'{v:.3f}' for v in o.mean)}, std {', '.join(f'{v:.3f}' for v in o.std)} · the test "
                  "split is not read here", highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("class")
    for head in (f"train {o.counted}", "%", f"val {o.counted}", "%"):
        table.add_column(head, justify="right")
    nt, nv = max(sum(o.train), 1), max(sum(o.val), 1)
    for name, t, v in zip(o.classes, o.train, o.val):
        table.add_row(name, f"{t:,}", f"{100 * t / nt:.1f}", f"{v:,}", f"{100 * v / nv:.1f}")
    console.print(table)


def write_pngs(o: DataOverview, folder: Path) -> list[Path]:
    """``STUDY-samples.png`` (one training image per class, labelled; masks overlaid for a
    segmentation set) and ``STUDY-classes.png`` (train and validation counts per class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(o.study)
    k = len(o.classes)
    cols = min(k, 10)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.6 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for c, ax in zip(range(k), axes.flat):
        img = o.samples[c].transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None)
        if o.sample_masks is not None:
            ax.imshow(np.ma.masked_equal(o.sample_masks[c], 0), alpha=0.45, cmap="autumn")
        ax.set_title(o.classes[c][:12], fontsize=8)
    fig.suptitle(f"{o.study}: one training image per class", fontsize=10)
    fig.tight_layout()
    samples = folder / f"{stem}-samples.png"
    _save(fig, samples)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * k + 2), 3.2), dpi=100)
    x = np.arange(k)
    ax.bar(x - 0.2, o.train, width=0.4, label=f"train ({o.train_images:,})")
    ax.bar(x + 0.2, o.val, width=0.4, label=f"validation ({o.val_images:,})")
    ax.set_xticks(x, [c[:10] for c in o.classes], rotation=45 if k > 10 else 0, fontsize=8)
    ax.set(ylabel=o.counted, title=f"{o.study}: {o.counted} per class")
    ax.legend(fontsize="small")
    fig.tight_layout()
    classes = folder / f"{stem}-classes.png"
    _save(fig, classes)
    plt.close(fig)
    return [samples, classes]


def _save(fig: object, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    write_atomically(path, buf.getvalue())
