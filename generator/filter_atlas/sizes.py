"""Image sizes: a side for a square, or (height, width)."""

from __future__ import annotations

Size = tuple[int, int]  # (height, width) in pixels


def as_size(size: int | Size) -> Size:
    """``224`` or ``(96, 160)`` -> (height, width)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def size_text(size: int | Size) -> str:
    """``224`` for a square, ``96x160`` (height x width) otherwise."""
    h, w = as_size(size)
    return str(h) if h == w else f"{h}x{w}"
