"""The Activation Maximization engine: objectives, parameterizations, transforms, optimization.

Written on Keras 3 ops, so it runs on the TensorFlow and JAX backends; only ``backend`` knows
which one is in use.
"""
