"""How a recorded number is written for people: short, with a dash where nothing was measured
and "failed" where a render gave no finite value. Pages and the views' panel notes use it."""

from __future__ import annotations

import math


def number(value: float | None, decimals: int | None = None) -> str:
    """``decimals`` places, else about three significant figures; a dash for None (not measured),
    "n/a" for NaN or an infinity."""
    if value is None:
        return "\N{EN DASH}"
    if not math.isfinite(value):
        return "n/a"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def activation(value: float | None) -> str:
    """A recorded activation: its ``number``, or "failed" where the render gave none (None) or
    recorded a value that is not finite."""
    return number(value) if value is not None and math.isfinite(value) else "failed"
