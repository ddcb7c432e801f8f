"""Functions written by the user in Python (torch code, a custom ``autograd.Function``), made
usable by name in identities for the checks that ask for them, and only those.

A :class:`FunctionSet` describes them, without torch: each entry is the user's callable and
what matgrad needs to know about it. It does nothing until a check is given it (the Python
API's ``functions=``, the pytest plugin's ``pytest_matgrad_functions`` hook, or the command
line's ``--functions MODULE:NAME``); the engine then builds one :class:`UserFunction` per entry
(``matgrad.engine.userfn``) and makes them visible to the parser, the binder and the evaluator
for the length of that check only (:mod:`matgrad.lang.overlay`). The built-in registry
(``matgrad.lang.functions.REGISTRY``) is never changed, and an identity file can name no
Python code: it can only call, by name, what the person running the check passed in.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from matgrad.lang.functions import REGISTRY, SENSITIVITIES, Function, Shape

# A shape rule: the argument shapes (without the trial axis) -> the result's shape.
ShapeRule = Callable[..., Sequence[int]]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One user function as described: the callable and its facts (no torch yet)."""

    name: str
    fn: Callable[..., Any]
    nargs: int
    shape: ShapeRule | None  # None: inferred by one call on meta tensors
    batched: bool  # True: fn takes [T, ...] tensors; False: matgrad batches it with vmap
    cost: int | None  # multiply-adds per call and trial; None: estimated as n^3
    sensitive: str | None
    summary: str
    own_backward: bool | None  # None: detected (an autograd.Function's apply)


class FunctionSet(Mapping[str, Entry]):
    """User functions for the checks that are given this set.

    >>> import matgrad
    >>> functions = matgrad.FunctionSet()
    >>> @functions.register("double", shape=lambda x: x)
    ... def double(x):
    ...     return 2 * x
    >>> sorted(functions)
    ['double']
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"FunctionSet({', '.join(self._entries)})"

    @overload
    def register(
        self, name: str, fn: Callable[..., Any], **options: Any
    ) -> Callable[..., Any]: ...

    @overload
    def register(
        self, name: str, fn: None = None, **options: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def register(self, name: str, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Add ``fn`` under ``name`` (or, without ``fn``, a decorator that adds the function
        it decorates).

        Args:
            name: the name identities call it by; a new name (not a built-in function).
            fn: a torch callable of ``nargs`` tensors returning one tensor, e.g. the
                ``apply`` of a ``torch.autograd.Function`` with a hand-written backward.
            nargs: how many tensor arguments it takes (default 1).
            shape: the result shape from the argument shapes (each a tuple, without the
                trial axis), e.g. ``lambda X: ()``; default: one call on meta tensors.
            batched: True (the default) when ``fn`` takes every argument with a leading
                trial axis ``[T, ...]`` and returns ``[T, ...]``; False to have matgrad batch
                it with ``torch.func.vmap`` (an autograd.Function then needs
                ``generate_vmap_rule = True`` or a ``vmap`` staticmethod).
            cost: multiply-adds per call and trial, for the work budget (default: n^3 for an
                n x n first argument, or its entry count).
            sensitive: what the degeneracy guard measures on the first argument: ``"gap"``,
                ``"cond"``, ``"cond_nonzero"`` or None (the default).
            summary: one line for messages.
            own_backward: whether ``fn`` brings its own derivative (default: detected, true
                for an ``autograd.Function``'s ``apply``). Then autograd's value is the
                implementation under test: matgrad adds finite differences and the Taylor
                test to every claim, and checks the backward itself (``implementation``).
        """
        if fn is None:

            def deco(f: Callable[..., Any]) -> Callable[..., Any]:
                self.register(name, f, **options)
                return f

            return deco
        self._entries[name] = describe(name, fn, **options)
        return fn


def describe(
    name: str,
    fn: Callable[..., Any],
    *,
    nargs: int = 1,
    shape: ShapeRule | None = None,
    batched: bool = True,
    cost: int | None = None,
    sensitive: str | None = None,
    summary: str = "",
    own_backward: bool | None = None,
) -> Entry:
    """One :class:`Entry`, its facts checked (``ValueError`` or ``TypeError`` with the reason)."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise ValueError(f"function name {name!r} is not a valid name (letters, digits, _)")
    if keyword.iskeyword(name) or name == "T":
        raise ValueError(f"function name {name!r} is reserved in expressions")
    if name in REGISTRY:
        raise ValueError(
            f"function name {name!r} is a built-in function of matgrad; choose another name"
        )
    if not callable(fn):
        raise TypeError(f"function {name!r}: expected a callable, got {type(fn).__name__}")
    if isinstance(nargs, bool) or not isinstance(nargs, int) or not 1 <= nargs <= 8:
        raise ValueError(f"function {name!r}: nargs must be an integer from 1 to 8, got {nargs!r}")
    if shape is not None and not callable(shape):
        raise TypeError(f"function {name!r}: shape must be callable (argument shapes -> shape)")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int) or cost < 0):
        raise ValueError(f"function {name!r}: cost must be a non-negative integer, got {cost!r}")
    if sensitive is not None and sensitive not in SENSITIVITIES:
        raise ValueError(
            f"function {name!r}: sensitive must be None or one of {', '.join(SENSITIVITIES)}, "
            f"got {sensitive!r}"
        )
    return Entry(
        name, fn, nargs, shape, bool(batched), cost, sensitive, summary, own_backward
    )


def as_function_set(functions: FunctionSet | Mapping[str, Any] | None) -> FunctionSet:
    """``functions`` as a :class:`FunctionSet`: a plain mapping ``name -> callable`` takes the
    defaults of :meth:`FunctionSet.register`."""
    if functions is None:
        return FunctionSet()
    if isinstance(functions, FunctionSet):
        return functions
    if not isinstance(functions, Mapping):
        raise TypeError(
            f"functions must be a matgrad.FunctionSet or a dict of name -> callable, got "
            f"{type(functions).__name__}"
        )
    out = FunctionSet()
    for name, fn in functions.items():
        if isinstance(fn, Entry):
            out._entries[name] = fn
        else:
            out.register(name, fn)
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class UserFunction(Function):
    """A user function as the expression language sees it: a :class:`Function` (built by the
    engine, its ``impl`` calling the user's code) and what is known of that code."""

    origin: str  # the callable's module and name, for messages
    own_backward: bool  # autograd's derivative is the user's implementation
    forward_mode: bool  # it defines its own forward-mode derivative (jvp)
    source_files: frozenset[str]  # where its code lives (to name it in a traceback)


def used(nodes: Sequence[Any], lookup: Callable[[str], Function | None]) -> list[UserFunction]:
    """The user functions that the expression trees ``nodes`` call, each once, in order."""
    found: dict[str, UserFunction] = {}
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        name = getattr(node, "fn", None)
        if isinstance(name, str):
            fn = lookup(name)
            if isinstance(fn, UserFunction):
                found.setdefault(name, fn)
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            children = value if isinstance(value, tuple) else (value,)
            stack.extend(c for c in reversed(children) if dataclasses.is_dataclass(c))
    return list(found.values())


def fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
