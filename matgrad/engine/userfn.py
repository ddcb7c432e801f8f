"""User functions made callable by name for one check: each entry of a
:class:`~matgrad.lang.user.FunctionSet` becomes a :class:`~matgrad.lang.user.UserFunction`
whose ``impl`` calls the user's code on batched tensors (directly, or through
``torch.func.vmap`` for a function registered with ``batched=False``), whose shape rule is the
one given or one call on meta tensors, and whose errors name the function.

:func:`activate` is how a check turns them on: ``with activate(functions): ...``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from matgrad.errors import EvalError
from matgrad.lang import overlay
from matgrad.lang.functions import Arg, Cost, Shape, ShapeError, cubic, fmt_shape
from matgrad.lang.user import Entry, FunctionSet, UserFunction, as_function_set

MAX_RESULT_DIMS = 4  # a user function's result has at most this many dims (without trials)


class UserCodeError(EvalError):
    """An exception raised inside a user function (or its backward); names the function."""


@contextlib.contextmanager
def activate(functions: FunctionSet | Mapping[str, Any] | None) -> Iterator[None]:
    """The user ``functions`` callable by name in the block, and nowhere else."""
    fs = as_function_set(functions)
    if not fs:
        yield
        return
    built = {name: build(entry) for name, entry in fs.items()}
    with overlay.using(built):
        yield


def build(entry: Entry) -> UserFunction:
    cls = _autograd_class(entry.fn)
    own = entry.own_backward if entry.own_backward is not None else cls is not None
    forward_mode = cls is not None and _defines(cls, "jvp")
    call = _caller(entry)
    shape_of = _shape_rule(entry, call)

    def infer(args: Sequence[Arg]) -> Shape:
        return shape_of(tuple(a.shape for a in args))

    def impl(torch_: Any, *args: Any) -> Any:
        return _checked_call(entry, call, shape_of, args)

    params = ", ".join(f"x{i + 1}" for i in range(entry.nargs)) if entry.nargs > 1 else "x"
    return UserFunction(
        name=entry.name,
        signature=f"{entry.name}({params})",
        summary=entry.summary or f"user function {_origin(entry.fn)}",
        result="(user)",
        min_args=entry.nargs,
        max_args=entry.nargs,
        static_args=frozenset(),
        infer=infer,
        impl=impl,
        category="user",
        cost=_fixed(entry.cost) if entry.cost is not None else cubic(1),
        sensitive=entry.sensitive,
        origin=_origin(entry.fn),
        own_backward=own,
        forward_mode=forward_mode,
        source_files=frozenset(_source_files(entry.fn, cls)),
    )


def _fixed(work: int) -> Cost:
    def cost(args: Sequence[Arg], out: Shape) -> int:
        return work

    return cost


def _autograd_class(fn: Callable[..., Any]) -> type | None:
    """The ``torch.autograd.Function`` subclass whose ``apply`` ``fn`` is, else None."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type) and issubclass(owner, torch.autograd.Function):
        return owner
    return None


def _defines(cls: type, method: str) -> bool:
    return getattr(cls, method, None) is not getattr(torch.autograd.Function, method, None)


def _origin(fn: Callable[..., Any]) -> str:
    cls = _autograd_class(fn)
    target: Any = cls if cls is not None else fn
    module = getattr(target, "__module__", None) or "?"
    name = getattr(target, "__qualname__", None) or type(target).__name__
    return f"{module}.{name}" + (".apply" if cls is not None else "")


def _source_files(fn: Callable[..., Any], cls: type | None) -> set[str]:
    found: set[str] = set()
    targets: list[Any] = [fn]
    if cls is not None:
        targets += [
            getattr(cls, m, None)
            for m in ("forward", "backward", "jvp", "setup_context", "vjp", "vmap")
        ]
    for t in targets:
        code = getattr(inspect.unwrap(t), "__code__", None) if t is not None else None
        if code is not None:
            found.add(code.co_filename)
    return found


def _caller(entry: Entry) -> Callable[..., Any]:
    if entry.batched:
        return entry.fn
    return torch.func.vmap(entry.fn)


def _shape_rule(entry: Entry, call: Callable[..., Any]) -> Callable[[tuple[Shape, ...]], Shape]:
    @functools.lru_cache(maxsize=256)
    def shape_of(shapes: tuple[Shape, ...]) -> Shape:
        if entry.shape is not None:
            try:
                out = entry.shape(*shapes)
                result = tuple(int(d) for d in out)
            except Exception as e:  # the user's rule: any failure is a message, not a crash
                raise ShapeError(
                    f"(a user function): its shape rule raised {type(e).__name__}: {e}"
                ) from None
        else:
            try:
                args = [torch.empty((1, *s), dtype=torch.float64, device="meta") for s in shapes]
                with torch.no_grad(), warnings.catch_warnings():
                    # torch's functional tensors warn once that NumPy is absent (unused here)
                    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
                    out = call(*args)
                if not isinstance(out, torch.Tensor) or tuple(out.shape[:1]) != (1,):
                    raise TypeError("it did not return a tensor with the trial axis first")
                result = tuple(int(d) for d in out.shape[1:])
            except Exception as e:
                raise ShapeError(
                    f"(a user function): its result shape could not be inferred by a call on "
                    f"meta tensors ({type(e).__name__}: {_first_line(e)}); give shape= when "
                    f"registering it{_batch_hint(entry)}"
                ) from None
        if len(result) > MAX_RESULT_DIMS or any(d < 1 for d in result):
            raise ShapeError(
                f"(a user function): its result shape {fmt_shape(result)} is not a scalar, "
                f"vector, matrix or tensor of positive sizes"
            )
        return result

    return shape_of


def _checked_call(
    entry: Entry,
    call: Callable[..., Any],
    shape_of: Callable[[tuple[Shape, ...]], Shape],
    args: tuple[Any, ...],
) -> Any:
    trials = args[0].shape[0]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
            out = call(*args)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise UserCodeError(
            f"user function {entry.name!r} ({_origin(entry.fn)}) raised {type(e).__name__}: "
            f"{_first_line(e)}{_batch_hint(entry)}"
        ) from e
    expected = (trials, *shape_of(tuple(tuple(a.shape[1:]) for a in args)))
    if not isinstance(out, torch.Tensor):
        raise UserCodeError(
            f"user function {entry.name!r} ({_origin(entry.fn)}) returned a "
            f"{type(out).__name__}, not a tensor"
        )
    if tuple(out.shape) != expected:
        raise UserCodeError(
            f"user function {entry.name!r} ({_origin(entry.fn)}) returned shape "
            f"{fmt_shape(tuple(out.shape))} for a batch of {trials} trials, expected "
            f"{fmt_shape(expected)} (the trial axis first){_batch_hint(entry)}"
        )
    return out


def _batch_hint(entry: Entry) -> str:
    if not entry.batched:
        return ""
    return (
        " (its arguments have a leading trial axis [T, ...]; a function not written for that "
        "is registered with batched=False, and matgrad batches it with torch.func.vmap)"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def blame(error: BaseException, functions: Sequence[UserFunction]) -> str | None:
    """What to say of an exception raised while checking an identity that calls the user
    ``functions``: the function (and its method) whose code the traceback passes through, or
    the functions together when the error comes from torch on their behalf (a backward that
    returns the wrong shape); None when the identity calls none."""
    if not functions:
        return None
    if isinstance(error, UserCodeError):
        return str(error)
    for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))):
        filename = frame.f_code.co_filename
        for fn in functions:
            if filename in fn.source_files:
                return (
                    f"user function {fn.name!r} ({fn.origin}) raised {type(error).__name__} in "
                    f"{frame.f_code.co_name}: {_first_line(error)}"
                )
    names = ", ".join(repr(f.name) for f in functions)
    return (
        f"an error in the user function{'s' if len(functions) > 1 else ''} {names} or in torch "
        f"on their results (a backward whose result has the wrong shape or type, say): "
        f"{type(error).__name__}: {_first_line(error)}"
    )
