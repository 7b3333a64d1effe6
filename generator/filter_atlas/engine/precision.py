"""Compute precision of the optimization step: ``float32`` (the default) or ``bfloat16``.

With ``bfloat16`` the model's layers up to the target layer compute in bfloat16 (weights stay
float32 and are cast on use, Keras' ``mixed_bfloat16`` policy); the target layer, the objective,
the image parameterization and the optimizer stay float32, and every activation that is
reported is measured in float32 on the saved image. Where bfloat16 matrix products are fast
(CPUs with AVX512-BF16 or AMX, recent GPUs) the step runs up to twice as fast; the images differ
from float32 ones. No Keras import here, so the command line can check the name first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from ..errors import AtlasError

Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
_POLICY = {"bfloat16": "mixed_bfloat16"}


def check(precision: str) -> Precision:
    """``precision`` if it is one of ``PRECISIONS``, else an AtlasError."""
    if precision not in PRECISIONS:
        raise AtlasError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    return precision  # type: ignore[return-value]


@contextmanager
def computing_in(model: Any, precision: Precision) -> Iterator[None]:
    """Within the block, every layer of the Keras model ``model`` (nested ones too) computes in
    ``precision``.

    Meant to wrap the model's call inside a function being traced: the policy is read while
    tracing, and the layers are restored on exit, so other compiled functions that share them
    keep float32.
    """
    if precision == "float32":
        yield
        return
    layers = model._flatten_layers(include_self=True, recursive=True)
    saved = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = _POLICY[precision]
        yield
    finally:
        for layer, policy in zip(layers, saved, strict=True):
            layer.dtype_policy = policy
