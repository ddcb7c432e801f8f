"""The Python API: read identities, check them, check one written inline.

Everything here is re-exported by the package (``matgrad.load``, ``matgrad.check``,
``matgrad.check_identity``, ...). Reading is torch-free; checking imports the engine (and so
torch) when it is called. The command line is a thin layer over these functions.

Results are the plain dataclasses of :mod:`matgrad.results`; each has ``to_dict()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Union

import yaml

from matgrad import runner
from matgrad.claims import KINDS
from matgrad.config import Config
from matgrad.errors import MatgradError, SpecError
from matgrad.lang.user import FunctionSet
from matgrad.limits import DEFAULT_LIMITS, Limits
from matgrad.results import INLINE_FILE, IdentityResult, RunReport
from matgrad.settings import Settings, resolve
from matgrad.spec import schema as spec
from matgrad.spec.schema import Identity, Invalid

PathLike = Union[str, "os.PathLike[str]"]
Checkable = Union[Identity, Invalid, str, "os.PathLike[str]"]
Functions = Union[FunctionSet, Mapping[str, Callable[..., Any]], None]

INLINE_ID = "inline"


class LoadError(MatgradError):
    """Identities that could not be read. ``errors`` holds each located problem."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


def collect(
    paths: PathLike | Iterable[PathLike],
    *,
    select: Sequence[str] | str = (),
    limits: Limits | None = None,
    functions: Functions = None,
) -> list[Identity | Invalid]:
    """Read identity files and folders, keeping what cannot be read as :class:`Invalid`.

    This is what ``matgrad check`` reads: a broken file does not stop the others, it becomes
    an ``error`` result when checked. Folders are searched recursively for ``*.yaml`` and
    ``*.yml``; a repeated id is an :class:`Invalid` for the repeat.

    Args:
        paths: a file or folder, or several.
        select: keep identities whose id contains this text or matches this glob (several
            patterns: any of them), as ``-k`` does on the command line.
        limits: size and work limits (default: :data:`matgrad.limits.DEFAULT_LIMITS`).
        functions: user functions the identities may call (see :func:`check`).

    >>> import matgrad
    >>> items = matgrad.collect("identities/seed.yaml", select="*-sign")
    >>> [item.id for item in items]
    ['seed-trace-inverse-sign']
    """
    patterns = [select] if isinstance(select, str) else list(select)
    with using_functions(functions):
        items = spec.load_all(_path_list(paths), limits or DEFAULT_LIMITS)
    return runner.select(items, patterns)


def load(
    paths: PathLike | Iterable[PathLike],
    *,
    select: Sequence[str] | str = (),
    limits: Limits | None = None,
    functions: Functions = None,
) -> list[Identity]:
    """Read and validate identities; raise :class:`LoadError` if any cannot be checked.

    Validation is everything short of tensor maths (the file format, the expressions, their
    names and shapes), as ``matgrad validate`` does, so every identity returned can be checked.

    Args:
        paths: a file or folder, or several.
        select: id patterns, as for :func:`collect`.
        limits: size and work limits.
        functions: user functions the identities may call (see :func:`check`).

    Returns:
        The identities, in file order.

    Raises:
        LoadError: listing every problem, each as ``file:line:col: identity 'ID', key K: ...``.

    >>> import matgrad
    >>> identities = matgrad.load("identities/seed.yaml")
    >>> [i.id for i in identities[:2]]
    ['seed-linear-form', 'seed-linear-form-transposed']
    >>> [c.label for c in identities[0].claims]
    ['grad a', 'grad x']
    """
    lim = limits or DEFAULT_LIMITS
    with using_functions(functions):
        items = collect(paths, select=select, limits=lim)
        problems = [err for _, err in spec.validate(items, lim) if err is not None]
    if problems:
        raise LoadError(problems)
    return [item for item in items if isinstance(item, Identity)]


def check(
    identities: Checkable | Iterable[Checkable],
    *,
    seed: int | None = None,
    trials: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    select: Sequence[str] | str = (),
    limits: Limits | None = None,
    maxfail: int | None = None,
    witnesses: Sequence[str] = (),
    config: Config | None = None,
    settings: Settings | None = None,
    on_start: Callable[[Identity | Invalid], None] | None = None,
    on_result: Callable[[IdentityResult], None] | None = None,
    functions: Functions = None,
) -> RunReport:
    """Check identities against autograd over random draws.

    A mismatch is a result, not an exception: each identity gets an
    :class:`~matgrad.results.IdentityResult` whose ``status`` is ``passed``, ``failed``,
    ``xfailed`` or ``xpassed`` (for ``expect: fail``), or ``error`` when it could not be
    checked (a broken file, NaN values, ...). Ctrl-C stops early with ``complete=False``.

    Args:
        identities: paths (files or folders), :class:`Identity` objects, or a mix.
        seed: the run seed (default 0); each identity derives its own from it and its id.
        trials: random draws per identity, overriding the files' ``trials``.
        device: ``"auto"`` (the default: CUDA when available), ``"cpu"`` or ``"cuda"``.
        dtype: ``"float64"`` (the default, recommended) or ``"float32"`` (looser default
            tolerances).
        rtol, atol: default tolerances for identities without their own ``tol`` (default:
            per dtype).
        select: id patterns, as for :func:`collect`.
        limits: size and work limits.
        maxfail: stop once this many identities did not meet their ``expect``.
        witnesses: extra judges for every claim besides each identity's own: ``"fd"``
            (finite differences) and/or ``"taylor"`` (the Taylor remainder's slope).
        config: ``[tool.matgrad]`` settings (:func:`matgrad.config.load_config`) for what
            the arguments above leave out; not read unless given.
        settings: the run's settings already resolved (:func:`matgrad.settings.resolve`),
            instead of the arguments above and ``config``.
        on_start, on_result: called before and after each identity (e.g. a progress bar).
        functions: user functions the identities may call by name, for this call only: a
            :class:`~matgrad.FunctionSet`, or a dict ``name -> torch callable`` (batched over
            a leading trial axis). With a function that has its own backward (an
            ``autograd.Function``), every claim is also judged by finite differences and the
            Taylor test, and autograd's gradient itself is checked (docs/python-api.md).

    Returns:
        A :class:`~matgrad.results.RunReport`; ``report.ok`` says whether every identity met
        its ``expect``; ``report.settings`` holds the settings it ran with.

    Raises:
        ValueError: for an unknown ``dtype``, ``device`` or witness, ``trials < 1``, or
            ``settings`` given together with any of the arguments it replaces.
        MatgradError: when ``device="cuda"`` but CUDA is not available.

    >>> import matgrad
    >>> report = matgrad.check("identities/seed.yaml", select="seed-linear-form*", trials=3)
    >>> [(r.id, r.status) for r in report.results]
    [('seed-linear-form', 'passed'), ('seed-linear-form-transposed', 'xfailed')]
    >>> report.ok
    True
    >>> report.to_dict()["summary"]
    {'passed': 1, 'failed': 0, 'xfailed': 1, 'xpassed': 0, 'error': 0}
    """
    if settings is None:
        settings = resolve(
            config, seed=seed, trials=trials, device=device, dtype=dtype, rtol=rtol, atol=atol,
            limits=limits, witnesses=tuple(witnesses),
        )
    elif witnesses or any(
        v is not None for v in (seed, trials, device, dtype, rtol, atol, limits, config)
    ):
        raise ValueError("give either settings or the separate settings (and config), not both")
    patterns = [select] if isinstance(select, str) else list(select)
    with using_functions(functions):
        items = runner.select(_checkables(identities, settings.limits), patterns)

        from matgrad.engine import core as engine

        return engine.run(
            items, settings, on_result=on_result, on_start=on_start, maxfail=maxfail
        )


@contextlib.contextmanager
def using_functions(functions: Functions) -> Iterator[None]:
    """The user ``functions`` callable by name in identities inside the block, and nowhere
    else (none: nothing changes, an enclosing block's functions stay). Building them imports
    torch."""
    if functions is None:
        yield
        return
    from matgrad.engine.userfn import activate

    with activate(functions):
        yield


def check_identity(
    *,
    f: str | float,
    vars: Mapping[str, Any],  # shadows a builtin: the identity file's own key
    grad: Mapping[str, str | float] | None = None,
    differential: Mapping[str, str | float] | None = None,
    hessian: Mapping[str, str | float] | None = None,
    jacobian: Mapping[str, str | float] | None = None,
    dims: Mapping[str, int] | None = None,
    let: Mapping[str, str] | None = None,
    id: str = INLINE_ID,  # shadows a builtin: the identity file's own key
    expect: str | None = None,
    tol: Mapping[str, float] | None = None,
    trials: int | None = None,
    convention: str | None = None,
    directions: str | None = None,
    title: str | None = None,
    source: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    limits: Limits | None = None,
    implementation: Sequence[str] | None = None,
    functions: Functions = None,
) -> IdentityResult:
    """Check one identity given inline, with the keys of an identity file.

    The fields go through the very reader and checks of identity files (the same expression
    parser, the same limits); ``vars`` takes ``{"X": ["n", "n"]}`` or
    ``{"X": {"shape": ["n", "n"], "domain": "spd"}}``; ``implementation`` takes a list of
    variables, ``["X"]``; ``functions`` the user functions f may call (see :func:`check`).

    Returns:
        The :class:`~matgrad.results.IdentityResult` (``.status``, ``.claims``, ``.message``).

    Raises:
        SpecError: when the identity is malformed (a syntax error, an unknown name, a shape
            that does not fit, ...); the message names the key, e.g. ``key grad.X``.

    >>> import matgrad
    >>> r = matgrad.check_identity(
    ...     f="tr(A @ X)", grad={"X": "A.T"}, vars={"X": ["n", "n"], "A": ["n", "n"]}, dims={"n": 3}
    ... )
    >>> r.status
    'passed'
    >>> r = matgrad.check_identity(
    ...     f="tr(A @ X)", grad={"X": "A"}, vars={"X": ["n", "n"], "A": ["n", "n"]}, dims={"n": 3}
    ... )
    >>> r.status, r.claims[0].message.startswith("grad X mismatched")
    ('failed', True)
    >>> matgrad.check_identity(f="tr(X", grad={"X": "eye(2)"}, vars={"X": [2, 2]})
    Traceback (most recent call last):
    ...
    matgrad.errors.SpecError: identity 'inline', key f: syntax error at column 3: '(' was never closed
    """  # noqa: E501 - a doctest: the message is shown exactly as the user sees it
    given = locals()
    fields: dict[str, Any] = {
        "id": id,
        "title": title,
        "source": source,
        "dims": dims,
        "vars": vars,
        "let": let,
        "f": f,
        # one keyword per registered claim kind, named after it (tests/test_claims.py checks)
        **{kind: given[kind] for kind in KINDS},
        "expect": expect,
        "tol": tol,
        "trials": trials,
        "convention": convention,
        "directions": directions,
    }
    settings = resolve(seed=seed, device=device, dtype=dtype, rtol=rtol, atol=atol, limits=limits)
    with using_functions(functions):
        ident = inline_identity(
            {k: v for k, v in fields.items() if v is not None}, settings.limits
        )
        return check([ident], settings=settings).results[0]


def inline_identity(fields: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Identity:
    """An :class:`Identity` from the keys of an identity file, read and validated as one.

    The mapping is written out as a YAML document and read back by :func:`spec.load_text`, so
    an inline identity meets exactly the checks and limits of a file. Raises :class:`SpecError`
    (without a file position: the YAML is ours, not the caller's).
    """
    try:
        plain = _plain(dict(fields), "", limits.max_yaml_depth)
    except SpecError as e:
        ident = fields.get("id")
        raise e.located(identity=ident if isinstance(ident, str) else None) from None
    text = yaml.dump(plain, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    (item,) = spec.load_text(text, INLINE_FILE, limits)
    if isinstance(item, Invalid):
        raise _unlocated(item.error) from None
    ((_, err),) = spec.validate([item], limits)
    if err is not None:
        raise _unlocated(err) from None
    return item


class _Dumper(yaml.SafeDumper):
    # The same object used twice (one shape list for two variables) would otherwise become an
    # anchor and an alias, which the identity reader refuses.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _plain(value: Any, key: str, depth: int, inside: frozenset[int] = frozenset()) -> Any:
    """``value`` as YAML-ready dicts, lists, text and numbers; anything else is refused, and so
    is nesting deeper than ``depth`` levels (an identity file's limit) or a container that holds
    itself."""
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in inside:
            raise SpecError(
                "a value contains itself: inline fields must be plain data", key=key or None
            )
        if depth < 0:
            raise SpecError(
                "nested too deeply (the identity format needs a few levels; see max_yaml_depth)",
                key=key or None,
            )
        inside = inside | {id(value)}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SpecError(f"names must be text, got {k!r}", key=key or None)
            out[k] = _plain(v, f"{key}.{k}" if key else k, depth - 1, inside)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, key, depth - 1, inside) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise SpecError(
        f"a {type(value).__name__} cannot be used here: inline fields take text, numbers, "
        f"lists and dicts",
        key=key or None,
    )


def _unlocated(err: SpecError) -> SpecError:
    return SpecError(err.problem, identity=err.identity, key=err.key)


def _path_list(paths: PathLike | Iterable[PathLike]) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"expected a file or folder name, got {type(p).__name__}")
        out.append(os.fspath(p))
    return out


def _checkables(
    identities: Checkable | Iterable[Checkable], limits: Limits
) -> list[Identity | Invalid]:
    if isinstance(identities, (Identity, Invalid, str, os.PathLike)):
        identities = [identities]
    out: list[Identity | Invalid] = []
    pending: list[str] = []  # consecutive paths are read together: a repeated id is caught
    for x in identities:
        if isinstance(x, (Identity, Invalid)):
            out.extend(spec.load_all(pending, limits))
            pending = []
            out.append(x)
        elif isinstance(x, (str, os.PathLike)):
            pending.append(os.fspath(x))
        else:
            raise TypeError(
                f"expected an Identity or a file or folder name, got {type(x).__name__}"
            )
    out.extend(spec.load_all(pending, limits))
    return out


__all__ = [
    "FunctionSet",
    "LoadError",
    "check",
    "check_identity",
    "collect",
    "inline_identity",
    "load",
    "using_functions",
]
