"""Models: load a Keras model with its weights, find its target (conv) layers, cut it at one of them.

A model is cut at the *input* of the target conv layer; the engine applies that layer's
convolution and bias itself (its pre-activation, so gradient ascent is never stopped by a ReLU
at the target), computing only the filters it needs.

- ``loading``: ``load_model``, ``weights_digest``, ``KNOWN_WEIGHTS``.
- ``loaded``: ``LoadedModel`` and ``ConvLayer``, the model as the atlas sees it.
- ``graph``: walking nested models, target chains, trunks, scope-safe layer names.
- ``geometry``: receptive fields and the boxes and crops drawn from them.
- ``preprocessing``: ``preprocessor`` and ``PREPROCESS_MODES``.
"""

from ..sizes import Size, as_size, size_text
from .geometry import (
    Box,
    FieldGeometry,
    box_centre,
    centre_box,
    centre_field,
    neuron_crop,
    position_boxes,
    receptive_geometry,
)
from .graph import own_name
from .loaded import ConvLayer, LoadedModel
from .loading import KNOWN_WEIGHTS, load_model, weights_digest
from .preprocessing import PREPROCESS_MODES, preprocessor

__all__ = [
    "KNOWN_WEIGHTS", "PREPROCESS_MODES", "Box", "ConvLayer", "FieldGeometry", "LoadedModel", "Size",
    "as_size", "box_centre", "centre_box", "centre_field", "load_model", "neuron_crop", "own_name",
    "position_boxes", "preprocessor", "receptive_geometry", "size_text", "weights_digest",
]
