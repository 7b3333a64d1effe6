"""Dataset examples: the natural image patches that excite, and most inhibit, each filter.

One forward pass per batch of images gives the pre-activation maps (conv + bias, before the ReLU)
of every wanted layer (``forward``). For each image and every filter of those layers, the best
``m`` and the worst ``m`` positions at distinct places are kept, with the filter's mean activation
after ReLU (``selection``). These per-image results are cached in SQLite, keyed by the file's
content, so a later pass over the same images never calls the model (``cache``). Over the set,
each filter keeps its ``k`` best and worst positions only, so memory does not grow with the set;
the winning patches are cropped at the end by re-reading just those files (``find``).
"""

from .cache import CACHE_ENV, CACHE_VERSION, default_cache_dir
from .find import ExamplesResult, FilterExamples, LayerPicks, Measured, Patch, find_examples, measure

__all__ = ["CACHE_ENV", "CACHE_VERSION", "ExamplesResult", "FilterExamples", "LayerPicks", "Measured",
           "Patch", "default_cache_dir", "find_examples", "measure"]
