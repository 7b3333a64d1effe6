"""Filter Atlas: Activation Maximization images of convolution filters, published with MkDocs.

Data flows one way: spec -> models -> engine -> store (images + manifest) -> pages -> MkDocs.
"""

__version__ = "0.1.0"
