"""keras-vis' input modifiers (``vis.input_modifiers``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.transforms import Jitter as JitterTransform


@dataclass(frozen=True)
class Jitter:
    """A random shift each step (rolling the image, as keras-vis does).

    Args:
        jitter: Largest shift: a fraction of the image side when below 1, else pixels.
    """

    jitter: float = 0.05

    def transform(self, size: tuple[int, int]) -> JitterTransform:
        """This modifier as a filter-atlas transform for images of ``size`` (height, width); a
        fraction is of the shorter side."""
        pixels = self.jitter * min(size) if self.jitter < 1 else self.jitter
        return JitterTransform(round(pixels))
