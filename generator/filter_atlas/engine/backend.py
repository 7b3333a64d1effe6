"""The only backend-specific code: gradients, compilation and device names."""

from __future__ import annotations

from collections.abc import Callable

import keras

from ..errors import AtlasError

SUPPORTED = ("tensorflow", "jax")


def name() -> str:
    backend = keras.backend.backend()
    if backend not in SUPPORTED:
        raise AtlasError(f"KERAS_BACKEND={backend} is not supported (use {' or '.join(SUPPORTED)})")
    return backend


def value_and_grad(fn: Callable) -> Callable:
    """``fn(x, *args) -> (loss, aux)`` becomes ``g(x, *args) -> ((loss, aux), dloss/dx)``."""
    if name() == "jax":
        import jax

        return jax.value_and_grad(fn, has_aux=True)
    import tensorflow as tf

    def with_tape(x, *args):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, aux = fn(x, *args)
        return (loss, aux), tape.gradient(loss, x)

    return with_tape


def jit(fn: Callable, xla: bool = True) -> Callable:
    """One compiled function (recompiled only for new input shapes).

    JAX always compiles with XLA. TensorFlow compiles with XLA when ``xla``, else to a plain
    ``tf.function`` graph whose convolutions run on oneDNN (``recipes.choose_xla`` picks).
    """
    if name() == "jax":
        import jax

        return jax.jit(fn)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # new batch shapes retrace by design; no warning needed
    return tf.function(fn, jit_compile=xla)


def loop(step: Callable, xla: bool = True) -> Callable:
    """``step(state, t, warp, *args) -> state`` becomes ``run(state, ts, warps, *args) -> state``.

    ``run`` applies ``step`` once per row of ``ts`` / ``warps``. JAX runs the whole chunk on the
    device in one compiled ``lax.scan`` (no host round trip per step, which on a GPU costs more
    than a first-layer step itself); TensorFlow calls the compiled step once per row.
    """
    if name() == "jax":
        import jax

        def run(state, ts, warps, *args):
            def body(carry, row):
                return step(carry, row[0], row[1], *args), None

            return jax.lax.scan(body, state, (ts, warps))[0]

        return jax.jit(run)
    compiled = jit(step, xla)
    tf_tensor = keras.ops.convert_to_tensor

    def run_each(state, ts, warps, *args):
        for k in range(ts.shape[0]):
            state = compiled(state, tf_tensor(ts[k]), tf_tensor(warps[k]), *args)
        return state

    return run_each


def device() -> str:
    """The accelerator the backend computes on, e.g. 'cpu' or 'gpu:NVIDIA H100'."""
    if name() == "jax":
        import jax

        dev = jax.devices()[0]
        return "cpu" if dev.platform == "cpu" else f"{dev.platform}:{dev.device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "cpu"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"gpu:{details.get('device_name', 'unknown')}"


def versions() -> dict[str, str]:
    """Versions of the libraries that shape the pixels."""
    import numpy as np

    found = {"keras": keras.__version__, "numpy": np.__version__}
    if name() == "jax":
        import jax

        found["jax"] = jax.__version__
    else:
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    return found
