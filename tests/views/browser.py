"""Headless Chromium (Debian's `chromium`) as a test instrument: DOM after scripts, console, screenshot.

The launch flags are the ones this network needs (no sandbox as root, no GPU, no background
traffic; WebGL in software). Console messages come from ``--enable-logging=stderr`` as ``INFO:CONSOLE`` lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--enable-logging=stderr",
         "--virtual-time-budget=15000",
         "--enable-unsafe-swiftshader"]  # software WebGL (the parallel-coordinates plot) without a deprecation notice

# Performance notes of the software GL driver (a WebGL plot read back by plotly.js), not the page's:
GL_DRIVER_NOTE = re.compile(r"^\"\[\.WebGL-[0-9a-fx]+\]GL Driver Message \(OpenGL, Performance,")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Page:
    dom: str
    console: list[str]


def _run(url: str, *extra: str, profile: Path) -> subprocess.CompletedProcess[str]:
    exe = chromium()
    assert exe is not None
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HOME": str(profile)})


def load(url: str, profile: Path) -> Page:
    """The DOM once scripts ran, and every console message the page produced."""
    r = _run(url, "--dump-dom", profile=profile)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [m.group(1) for m in re.finditer(r"INFO:CONSOLE[^\]]*\] (.*)", r.stderr)
               if not GL_DRIVER_NOTE.match(m.group(1))]
    return Page(r.stdout, console)


def screenshot(url: str, path: Path, profile: Path, size: tuple[int, int] = (1300, 4000)) -> np.ndarray:
    r = _run(url, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", "--hide-scrollbars",
             profile=profile)
    assert r.returncode == 0 and path.is_file(), r.stderr[-2000:]
    return np.asarray(Image.open(path).convert("RGB"))


def colored_fraction(pixels: np.ndarray) -> float:
    """Share of clearly coloured (not white/grey/black) pixels: text alone scores ~0, plots do not."""
    rgb = pixels.astype(int)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 40).mean())
