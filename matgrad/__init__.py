"""matgrad: verify hand-derived matrix-calculus identities against PyTorch autograd.

The Python API (see docs/python-api.md) is loaded on first use, so ``import matgrad`` stays
light and torch-free; checking imports torch when it runs.

>>> import matgrad
>>> report = matgrad.check("identities/seed.yaml", trials=2)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from matgrad._version import __version__

if TYPE_CHECKING:
    from matgrad.api import LoadError, check, check_identity, collect, load  # noqa: F401
    from matgrad.errors import EvalError, ExprError, LimitError, MatgradError, SpecError  # noqa: F401
    from matgrad.lang.user import FunctionSet  # noqa: F401
    from matgrad.limits import Limits  # noqa: F401
    from matgrad.results import ClaimResult, IdentityResult, RunReport  # noqa: F401
    from matgrad.spec.schema import Identity, Invalid  # noqa: F401

# name -> the module that defines it, imported on first access.
_LAZY = {
    "check": "matgrad.api",
    "load": "matgrad.api",
    "collect": "matgrad.api",
    "check_identity": "matgrad.api",
    "LoadError": "matgrad.api",
    "FunctionSet": "matgrad.lang.user",
    "Identity": "matgrad.spec.schema",
    "Invalid": "matgrad.spec.schema",
    "ClaimResult": "matgrad.results",
    "IdentityResult": "matgrad.results",
    "RunReport": "matgrad.results",
    "MatgradError": "matgrad.errors",
    "SpecError": "matgrad.errors",
    "ExprError": "matgrad.errors",
    "EvalError": "matgrad.errors",
    "LimitError": "matgrad.errors",
    "Limits": "matgrad.limits",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'matgrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
