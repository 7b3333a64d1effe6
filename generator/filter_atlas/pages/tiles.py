"""A gallery tile: one filter's image of one variant (model and recipe), with its numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .derived import Contrast
from .panels import UnitPanel
from .statistics import finite, natural_ratio


@dataclass(frozen=True)
class Variant:
    """One model and recipe: the images of a layer are grouped by it."""

    model: str
    recipe: str
    trained: bool

    @property
    def label(self) -> str:
        return f"{self.model} · {self.recipe}"


@dataclass(frozen=True)
class Tile:
    """One filter's image, as a gallery tile."""

    model: str
    layer: str
    index: int
    recipe: str
    anchor: str
    page: str  # its gallery page, relative to the docs directory
    image: str | None  # URLs relative to the docs directory; None for a dead or failed filter
    thumbnail: str | None
    file: Path | None
    activation: float | None  # None (or not finite): the render failed
    natural: float | None
    dead: bool
    trained: bool
    steps: int
    size: int
    seed: int
    unit: UnitPanel | None = None
    contrast: Contrast | None = None  # keras-vis images: shown a second time, contrast stretched
    precision: str | None = None  # "bfloat16" when the model computed in it; None: float32
    views: tuple[str, ...] = ("channel",)  # the views it has, in the registry's order

    @property
    def failed(self) -> bool:
        """Whether the render gave no finite activation (a dead filter is not failed)."""
        return not self.dead and not finite(self.activation)

    @property
    def live(self) -> bool:
        """Whether the tile has an image that activates its filter."""
        return not self.dead and not self.failed

    @property
    def ratio(self) -> float | None:
        """Achieved activation over the best natural-photo activation."""
        return natural_ratio(self.activation, self.natural)

    @property
    def beats(self) -> bool:
        """Whether the image activates the filter more than every natural photo."""
        return finite(self.activation) and finite(self.natural) and self.activation > self.natural

    @property
    def href(self) -> str:
        """Its anchor on its gallery page, relative to the docs directory (for raw HTML)."""
        return f"{self.page[:-3]}.html#{self.anchor}"

    @property
    def caption(self) -> str:
        return f"{self.model} · {self.layer} · filter {self.index} · {self.recipe}" + \
            (f" · {self.precision}" if self.precision else "")
