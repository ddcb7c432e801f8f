"""pytest plugin: each claim of each identity becomes a test item.

Installed with matgrad (a ``pytest11`` entry point) and off unless asked for::

    pytest --matgrad identities/          # or, in the pytest configuration:
    [tool.pytest.ini_options]
    matgrad_paths = ["identities"]

Node ids read ``path/file.yaml::identity-id::grad[X]``, so ``-k``, ``-x``, ``--junitxml``,
``--lf`` and pytest-xdist work as for any test. An identity marked ``expect: fail`` is a
strict xfail: it must fail. Settings (seed, trials, dtype, device, tolerances, limits) come
from ``[tool.matgrad]`` in pyproject.toml, resolved once per session by the resolver the
command line uses (:func:`matgrad.settings.resolve`).

Each identity is checked once per process, when its first claim runs; its other claims read
the cached result. Importing this module stays cheap and torch-free: pytest loads it in every
session of an environment where matgrad is installed.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from matgrad.results import ClaimResult, IdentityResult
    from matgrad.settings import Settings
    from matgrad.spec.schema import Claim, Identity, Invalid

YAML_SUFFIXES = (".yaml", ".yml")
XFAIL_REASON = "expect: fail (a known-wrong identity)"


class MatgradFailure(AssertionError):
    """A claim that disagrees with autograd (or an expect: fail identity that is wrong)."""


class MatgradCheckError(Exception):
    """An identity that could not be checked: a broken file, NaN values, a bug."""


class MatgradWarning(UserWarning):
    """What the reader must know although the verdict stands (e.g. undefined draws that were
    drawn again): the identity's ``warnings``, issued by its first claim's test."""


@dataclasses.dataclass
class _State:
    roots: list[Path]  # resolved
    settings: Settings  # from [tool.matgrad], resolved once for the session
    config_file: Path | None  # where they came from
    base: Path  # where pytest was started: file names in messages are relative to it
    items: dict[Path, list[Identity | Invalid]] | None = None
    results: dict[tuple[str, str], IdentityResult] = dataclasses.field(default_factory=dict)
    hook: Any = None  # the config's hook caller: asked once for the user functions
    _functions: Any = None
    _asked: bool = False

    @property
    def functions(self) -> Any:
        """The user functions of the ``pytest_matgrad_functions`` hook (None: none)."""
        if not self._asked and self.hook is not None:
            self._asked = True
            self._functions = self.hook.pytest_matgrad_functions(config=self.config)
        return self._functions

    config: Any = None

    def covers(self, path: Path) -> bool:
        path = path.resolve()
        return any(path == r or r in path.parents for r in self.roots)

    def items_for(self, path: Path) -> list[Identity | Invalid]:
        from matgrad.api import using_functions
        from matgrad.spec.schema import load_all, load_file

        with using_functions(self.functions):
            if self.items is None:
                # Read every root once, so that a repeated id across files is reported.
                self.items = {}
                names = [_relative(r, self.base) for r in self.roots]
                for item in load_all(names, self.settings.limits):
                    self.items.setdefault(Path(item.path).resolve(), []).append(item)
            found = self.items.get(path.resolve())
            if found is None:  # a file pytest visits that the discovery above skipped
                found = load_file(_relative(path.resolve(), self.base), self.settings.limits)
        return found

    def result_for(self, ident: Identity) -> IdentityResult:
        key = (ident.path, ident.id)
        if key not in self.results:
            from matgrad import api

            report = api.check([ident], settings=self.settings, functions=self.functions)
            self.results[key] = report.results[0]
        return self.results[key]


_STATE = pytest.StashKey[_State]()


class _Hooks:
    @staticmethod
    @pytest.hookspec(firstresult=True)
    def pytest_matgrad_functions(config: pytest.Config) -> Any:
        """Return the user functions identities may call (a ``matgrad.FunctionSet`` or a
        dict ``name -> callable``), or None. Implement it in a ``conftest.py`` of the
        project: identity folders never load Python code themselves."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_Hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("matgrad", "matgrad: matrix-calculus identities as tests")
    group.addoption(
        "--matgrad",
        action="append",
        dest="matgrad_paths",
        default=[],
        metavar="PATH",
        help="Check the identities in this file or folder, one test per claim (repeatable).",
    )
    parser.addini(
        "matgrad_paths",
        type="paths",
        default=[],
        help="Identity files or folders to check as tests (as --matgrad).",
    )


def pytest_configure(config: pytest.Config) -> None:
    given = config.getoption("matgrad_paths") or []
    if given:
        base = config.invocation_params.dir
        roots = [(base / p).resolve() for p in given]
    else:
        roots = [Path(p).resolve() for p in config.getini("matgrad_paths")]
    if not roots:
        return
    for root in roots:
        if not root.exists():
            raise pytest.UsageError(
                f"matgrad: {root} does not exist (from --matgrad or matgrad_paths)"
            )
    from matgrad.config import load_config
    from matgrad.errors import MatgradError
    from matgrad.settings import resolve

    try:
        project = load_config(config.rootpath)
        settings = resolve(project)
    except MatgradError as e:
        raise pytest.UsageError(f"matgrad: {e}") from None
    config.stash[_STATE] = _State(
        roots, settings, project.file, config.invocation_params.dir, hook=config.hook,
        config=config,
    )


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base.resolve()))
    except ValueError:
        return str(path)


def pytest_report_header(config: pytest.Config) -> str | None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return None
    s, file = state.settings, state.config_file
    roots = ", ".join(os.path.relpath(r, config.rootpath) for r in state.roots)
    return (
        f"matgrad: {roots} (seed {s.seed}, {s.dtype}"
        f"{', settings from ' + str(file) if file else ''})"
    )


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so they apply to identities too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add the identities of the ``--matgrad`` paths that the command line did not collect.

    Only identity files are collected from those paths, as nodes hung on the session: pytest
    never walks the folders, so a ``conftest.py`` or ``test_*.py`` beside the identities (in a
    pull request, say) is neither imported nor run. Workers of pytest-xdist run this hook too
    and collect the same items.
    """
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    from matgrad.spec.schema import discover

    done = {item.path.resolve() for item in items if isinstance(item, (ClaimItem, InvalidItem))}
    for name in discover([str(r) for r in state.roots]):
        path = Path(name).resolve()
        if path not in done:
            done.add(path)
            items.extend(session.genitems(_identity_file(session, path)))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash.get(_STATE, None)
    if state is None or file_path.suffix not in YAML_SUFFIXES or not state.covers(file_path):
        return None
    return _identity_file(parent, file_path)


def _identity_file(parent: pytest.Collector | pytest.Session, path: Path) -> IdentityFile:
    """The collector of one identity file. Its node id is the path as pytest writes it, with
    control characters written out: pytest prints node ids as they are (``FAILED <id>``), and
    a file name from a pull request could hold terminal escapes or a CI-log command."""
    from matgrad.report.escape import terminal

    node = IdentityFile.from_parent(parent, path=path)
    safe = terminal(node.nodeid)
    if safe != node.nodeid:
        node = IdentityFile.from_parent(parent, path=path, nodeid=safe)
    return node


class IdentityFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        from matgrad.spec.schema import Invalid

        state = self.config.stash[_STATE]
        for item in state.items_for(self.path):
            if isinstance(item, Invalid):
                name = item.id or f"line-{item.line or 1}"
                yield InvalidItem.from_parent(self, name=name, invalid=item)
            else:
                yield IdentityNode.from_parent(self, name=item.id, identity=item)


class IdentityNode(pytest.Collector):
    def __init__(self, *, identity: Identity, **kw: Any) -> None:
        super().__init__(**kw)
        self.identity = identity

    def collect(self) -> Iterator[pytest.Item]:
        for claim in self.identity.claims:
            item = ClaimItem.from_parent(self, name=f"{claim.kind}[{claim.subject}]", claim=claim)
            if self.identity.expect == "fail":
                item.add_marker(
                    pytest.mark.xfail(strict=True, raises=MatgradFailure, reason=XFAIL_REASON)
                )
            yield item

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.identity.line - 1, self.identity.id


class ClaimItem(pytest.Item):
    def __init__(self, *, claim: Claim, **kw: Any) -> None:
        super().__init__(**kw)
        self.claim = claim
        assert isinstance(self.parent, IdentityNode)
        self.identity: Identity = self.parent.identity

    def runtest(self) -> None:
        state = self.config.stash[_STATE]
        result = state.result_for(self.identity)
        claim = next(
            (c for c in result.claims if (c.kind, c.var) == (self.claim.kind, self.claim.subject)),
            None,
        )
        if claim is None:  # the identity could not be checked at all
            raise MatgradCheckError(_with_context(result.message, result, state))
        if claim is result.claims[0]:
            for text in result.warnings:
                warnings.warn(MatgradWarning(f"{result.id}: {text}"), stacklevel=1)
            # claims the engine added (the backward of a user function, checked for every
            # variable): reported by the identity's first test
            listed = {(c.kind, c.subject) for c in self.identity.claims}
            for added in result.claims:
                if (added.kind, added.var) not in listed and added.status != "passed":
                    if added.status == "error":
                        raise MatgradCheckError(_with_context(added.message, result, state))
                    raise MatgradFailure(_claim_failure(added, result, state))
        if claim.status == "error":
            raise MatgradCheckError(_with_context(claim.message, result, state))
        if result.status == "error":
            others = [c.message for c in result.claims if c.status == "error"]
            raise MatgradCheckError(_with_context("; ".join(others), result, state))
        if claim.status == "failed":
            raise MatgradFailure(_claim_failure(claim, result, state))
        if result.status == "xfailed":
            # This claim holds, but the identity as a whole is wrong, as its expect says.
            wrong = ", ".join(c.label for c in result.claims if c.status == "failed")
            message = f"{claim.label} holds, but the identity fails on {wrong}"
            raise MatgradFailure(_with_context(message, result, state))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (MatgradFailure, MatgradCheckError)):
            return _failure_text(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.claim.line - 1, f"{self.identity.id}: {self.claim.label}"


class InvalidItem(pytest.Item):
    """A file or identity that cannot be read: one failing item, with the reason."""

    def __init__(self, *, invalid: Invalid, **kw: Any) -> None:
        super().__init__(**kw)
        self.invalid = invalid

    def runtest(self) -> None:
        raise MatgradCheckError(str(self.invalid.error))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, MatgradCheckError):
            return _failure_text(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, (self.invalid.line or 1) - 1, self.name


def _failure_text(error: BaseException) -> str:
    """A failure as pytest prints it (terminal, CI log): user text escaped at the boundary."""
    from matgrad.report.escape import terminal

    return terminal(error, newlines=True)


def _claim_failure(claim: ClaimResult, result: IdentityResult, state: _State) -> str:
    from matgrad.results import fmt_number

    lines = [claim.message]
    if claim.worst is not None and "claimed" not in claim.message:
        w = claim.worst
        lines.append(
            f"  worst entry: trial {w.trial}, index {w.index}: "
            f"autograd {fmt_number(w.autograd, '.6g')}, claimed {fmt_number(w.claimed, '.6g')}"
        )
    if claim.hint:
        lines.append(f"  hint: {claim.hint}")
    return _with_context("\n".join(lines), result, state)


def _with_context(message: str, result: IdentityResult, state: _State) -> str:
    from matgrad.report.text import reproduce

    where = result.file if result.line is None else f"{result.file}:{result.line}"
    return (
        f"{message}\n"
        f"  identity: {result.id} ({where})\n"
        f"  reproduce: {reproduce(result, state.settings)}"
    )
