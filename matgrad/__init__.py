"""matgrad: verify hand-derived matrix-calculus identities against PyTorch autograd."""

from matgrad._version import __version__

__all__ = ["__version__"]
