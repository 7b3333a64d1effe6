"""Optimizers: a gradient step on the image parameters, as traceable Keras ops.

Each optimizer minimizes (the engine hands it the gradient of the negated objective) and keeps
its state as a tuple of tensors shaped like the parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from keras import ops

_EPS = 1e-7


@dataclass(frozen=True)
class Adam:
    """Adam with bias correction (Kingma & Ba 2015; TensorFlow's defaults but the learning rate).

    Args:
        learning_rate: Step size.
        beta_1: Decay of the first moment.
        beta_2: Decay of the second moment.
        epsilon: Added to the corrected second moment's square root.
    """

    learning_rate: float = 0.05
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    name = "adam"

    def init(self, params) -> tuple:
        """Zero first and second moments."""
        zeros = ops.zeros_like(params)
        return zeros, zeros

    def update(self, params, grads, state: tuple, t) -> tuple:
        """One step at step number ``t`` (1-based): returns (new params, new state)."""
        m, v = state
        m = self.beta_1 * m + (1 - self.beta_1) * grads
        v = self.beta_2 * v + (1 - self.beta_2) * ops.square(grads)
        m_hat, v_hat = m / (1 - self.beta_1**t), v / (1 - self.beta_2**t)
        return params - self.learning_rate * m_hat / (ops.sqrt(v_hat) + self.epsilon), (m, v)

    def key(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class RMSProp:
    """keras-vis' optimizer: each image's gradient divided by its RMS (``normalize``), then
    RMSProp with cache decay ``decay`` and a unit step.

    Args:
        learning_rate: Step size (keras-vis: 1).
        decay: Decay of the squared-gradient cache.
        normalize: Divide each image's gradient by its root mean square first.
    """

    learning_rate: float = 1.0
    decay: float = 0.95
    normalize: bool = True
    name = "rmsprop"

    def init(self, params) -> tuple:
        return (ops.zeros_like(params),)

    def update(self, params, grads, state: tuple, t) -> tuple:
        (v,) = state
        if self.normalize:
            axes = tuple(range(1, len(grads.shape)))
            grads = grads / (ops.sqrt(ops.mean(ops.square(grads), axis=axes, keepdims=True)) + _EPS)
        v = self.decay * v + (1 - self.decay) * ops.square(grads)
        return params - self.learning_rate * grads / ops.sqrt(v + _EPS), (v,)

    def key(self) -> dict:
        return {"name": self.name, **asdict(self)}
