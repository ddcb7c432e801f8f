"""The functions an expression may call in the current check: the built-in registry plus the
user functions of this check, if it was given any.

The user functions live in a context variable set for the length of one check
(:func:`using`), so they are seen by the parser, the binder and the evaluator of that check and
by nothing else: another check, before, after or in another thread, sees only the built-ins.
The built-in registry itself is never changed. The parser's cache is keyed by :func:`current`,
so a parse made with one set of functions is never reused under another.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping

from matgrad.lang.functions import REGISTRY, Function


class Overlay(Mapping[str, Function]):
    """An immutable set of extra functions (hashable: it keys the parser's cache)."""

    def __init__(self, functions: Mapping[str, Function] | None = None) -> None:
        self._fns = dict(functions or {})
        self._key = tuple(sorted((n, id(f)) for n, f in self._fns.items()))

    def __getitem__(self, name: str) -> Function:
        return self._fns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fns)

    def __len__(self) -> int:
        return len(self._fns)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Overlay) and self._key == other._key


EMPTY = Overlay()
_CURRENT: contextvars.ContextVar[Overlay] = contextvars.ContextVar(
    "matgrad_user_functions", default=EMPTY
)


def current() -> Overlay:
    """The extra functions of the check in progress (empty outside one)."""
    return _CURRENT.get()


def lookup(name: str) -> Function | None:
    """The function ``name`` (built-in first, then the check's own), or None."""
    fn = REGISTRY.get(name)
    return fn if fn is not None else _CURRENT.get().get(name)


def get(name: str) -> Function:
    """As :func:`lookup`, for a name the parser accepted (KeyError if it is gone)."""
    fn = lookup(name)
    if fn is None:
        raise KeyError(name)
    return fn


def known() -> Mapping[str, Function]:
    """Every function callable now, by name (for "did you mean" hints and name clashes)."""
    extra = _CURRENT.get()
    return {**REGISTRY, **extra} if extra else REGISTRY


@contextlib.contextmanager
def using(functions: Mapping[str, Function] | None) -> Iterator[None]:
    """Make ``functions`` callable by name for the length of the block (nothing when None or
    empty: an enclosing block's functions stay visible)."""
    if not functions:
        yield
        return
    token = _CURRENT.set(Overlay({**_CURRENT.get(), **functions}))
    try:
        yield
    finally:
        _CURRENT.reset(token)
