"""The first conv layer's kernels, drawn from the weights the manifest holds (an SVG grid, each
kernel's own scale: grey at 0, its largest weight at full strength), and how many are colour-blind.

A kernel splits into the part shared by R, G and B (the per-position mean over the three colours:
it sees brightness) and the rest (it sees colour differences); the two are orthogonal, so their
energies (sums of squares) add up to the kernel's.
"""

from __future__ import annotations

import html

import numpy as np

from ..store import KernelsRecord
from .text import plural

CELL = 7  # px per weight
GAP = 4  # px between kernels
COLUMNS = 16
ACHROMATIC = 0.8  # a kernel with at least this share of its energy shared by R, G and B


def kernels(record: KernelsRecord) -> np.ndarray:
    """(filters, height, width, 3) weights, colour channels R, G, B."""
    return np.asarray(record.weights, dtype="float64").reshape(record.shape).transpose(3, 0, 1, 2)


def shared_share(kernel: np.ndarray) -> float:
    """The share of a (height, width, 3) kernel's energy in its part shared by R, G and B."""
    total = float((kernel ** 2).sum())
    return 3.0 * float((kernel.mean(axis=-1) ** 2).sum()) / total if total else 0.0


def kernel_figure(record: KernelsRecord) -> str:
    """Every kernel as a grid of coloured squares, ``COLUMNS`` to a row."""
    weights = kernels(record)
    count, h, w = weights.shape[:3]
    rows = -(-count // COLUMNS)
    step_x, step_y = w * CELL + GAP, h * CELL + GAP
    cells = []
    for k, kernel in enumerate(weights):
        top = np.abs(kernel).max() or 1.0
        rgb = np.round(255 * (0.5 + 0.5 * kernel / top)).astype(int)
        x0, y0 = (k % COLUMNS) * step_x, (k // COLUMNS) * step_y
        cells += [f'<rect x="{x0 + j * CELL}" y="{y0 + i * CELL}" width="{CELL}" height="{CELL}" '
                  f'fill="#{r:02x}{g:02x}{b:02x}"/>' for i in range(h) for j in range(w)
                  for r, g, b in [rgb[i, j]]]
    label = html.escape(f"The {count} kernels of {record.layer}, {h} by {w} weights each on red, green "
                        "and blue, drawn in colour: grey is 0")
    return (f'<figure class="fa-kernels"><svg viewBox="0 0 {COLUMNS * step_x - GAP} {rows * step_y - GAP}" '
            f'role="img" aria-label="{label}">{"".join(cells)}</svg></figure>')


def kernel_summary(record: KernelsRecord) -> str:
    """What the drawing shows, in numbers: how many kernels see mostly brightness."""
    weights = kernels(record)
    shares = np.array([shared_share(k) for k in weights])
    bright = int((shares >= ACHROMATIC).sum())
    count, h, w = weights.shape[:3]
    return (f"{record.layer}'s {plural(count, 'kernel')} of {h} × {w} weights on red, green and blue, each "  # noqa: RUF001
            f"drawn on its own scale (grey is 0, its largest weight is full colour). {bright} of {count} put "
            f"at least {ACHROMATIC:.0%} of their energy (sum of squared weights) into the part the three "
            "colours share, so they see brightness, whatever the colour; the other "
            f"{count - bright} see colour differences (median share {np.median(shares):.0%}).")
