"""Safe YAML reading that keeps positions.

Identity files are untrusted, so: the safe loader only (the C one when available), no tags
beyond the plain YAML types, no anchors or aliases, no duplicate keys. The result is a small
tree of :class:`YMap`, :class:`YSeq` and :class:`YScalar` that remembers the line and column
of every value, so each later error can point at it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Union

import yaml

from matgrad.errors import SpecError
from matgrad.limits import DEFAULT_LIMITS, Limits

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}


@dataclasses.dataclass(frozen=True)
class YScalar:
    value: Any  # the value YAML's safe resolver gives (str, int, float, bool, None)
    raw: str  # the text as written
    tag: str  # 'str', 'int', 'float', 'bool', 'null'
    line: int
    col: int


@dataclasses.dataclass(frozen=True)
class YSeq:
    items: tuple[YNode, ...]
    line: int
    col: int


@dataclasses.dataclass(frozen=True)
class YMap:
    items: dict[str, YNode]
    keys: dict[str, tuple[int, int]]  # key -> (line, col) of the key itself
    line: int
    col: int


YNode = Union[YScalar, YSeq, YMap]

KIND = {YScalar: "a single value", YSeq: "a list", YMap: "a mapping"}


def load(text: str, path: str, limits: Limits = DEFAULT_LIMITS) -> YNode | None:
    """Parse one YAML document into a position-keeping tree (None for an empty file).

    Values nested deeper than ``limits.max_yaml_depth`` are refused (the identity format needs
    at most seven levels), so no hostile file can exhaust the stack.
    """
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = e.problem or "malformed YAML"
            if mark is not None and _tab_at(text, mark.index):
                problem = (
                    "a tab character: YAML indents with spaces only (replace the tabs with "
                    "spaces)"
                )
            if e.context and "expected a single document" in e.context:
                problem = "several YAML documents (---) in one file; use an `identities:` list"
            raise SpecError(
                f"YAML syntax error: {problem}{_yaml_hint(problem)}",
                path=path,
                line=mark.line + 1 if mark else None,
                col=mark.column + 1 if mark else None,
            ) from None
        except yaml.reader.ReaderError as e:  # a character YAML does not allow
            line = text.count("\n", 0, e.position) + 1
            col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
            raise SpecError(
                f"YAML error: character #x{e.character:04x} is not allowed ({e.reason})",
                path=path,
                line=line,
                col=col,
            ) from None
        except yaml.YAMLError as e:
            raise SpecError(f"YAML error: {e}", path=path) from None
        except RecursionError:  # the pure-Python composer recurses once per level
            raise SpecError(_too_deep(limits), path=path) from None
        if node is None:
            return None
        try:
            return _convert(node, path, set(), 1, limits)
        except RecursionError:  # a backstop for a max_yaml_depth raised beyond the stack
            raise SpecError(_too_deep(limits), path=path) from None
    finally:
        loader.dispose()


def _tab_at(text: str, index: int) -> bool:
    """Is the YAML error at ``index`` a tab (in the indentation, or the character itself)?"""
    if 0 <= index < len(text) and text[index] == "\t":
        return True
    start = text.rfind("\n", 0, max(index, 0)) + 1
    end = text.find("\n", start)
    line = text[start : end if end >= 0 else len(text)]
    return "\t" in line[: len(line) - len(line.lstrip())]


def _yaml_hint(problem: str) -> str:
    if problem.startswith("a tab character"):
        return ""
    if "cannot start any token" in problem:
        return " (an expression starting with @ or ` must be quoted)"
    if "found undefined alias" in problem or "alias" in problem:
        return " (an expression starting with * is read as a YAML alias: quote it)"
    if "mapping values are not allowed" in problem:
        return " (a value containing ': ' must be quoted)"
    return ""


def _too_deep(limits: Limits) -> str:
    limit = limits.max_yaml_depth
    return str(limits.refuse("max_yaml_depth", f"more than {limit}", "the YAML nesting depth"))


def _convert(node: Any, path: str, seen: set[int], depth: int, limits: Limits) -> YNode:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if depth > limits.max_yaml_depth:
        raise SpecError(_too_deep(limits), path=path, line=line, col=col)
    if id(node) in seen:
        # The composer resolves an alias to the very node its anchor names: seeing a node
        # twice means an alias, and walking on could expand an alias bomb.
        raise SpecError(
            "YAML anchors and aliases (&name / *name) are not allowed; write the value out "
            "(an expression starting with * must be quoted)",
            path=path,
            line=line,
            col=col,
        )
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in SCALAR_TAGS:
            raise SpecError(
                f"YAML tag {node.tag!r} is not allowed; only plain values (quote the text)",
                path=path,
                line=line,
                col=col,
            )
        if node.tag == _TAG + "str":
            value: Any = node.value
        else:
            try:
                value = _SCALARS.construct_object(node)
            except (ValueError, OverflowError):  # e.g. an integer of more than 4300 digits
                raise SpecError(
                    f"the number {_clip(node.value)} is too large to read",
                    path=path,
                    line=line,
                    col=col,
                ) from None
        return YScalar(value, node.value, node.tag[len(_TAG) :], line, col)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _TAG + "seq":
            raise SpecError(f"YAML tag {node.tag!r} is not allowed", path=path, line=line, col=col)
        items_ = tuple(_convert(n, path, seen, depth + 1, limits) for n in node.value)
        return YSeq(items_, line, col)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _TAG + "map":
            raise SpecError(f"YAML tag {node.tag!r} is not allowed", path=path, line=line, col=col)
        items: dict[str, YNode] = {}
        keys: dict[str, tuple[int, int]] = {}
        for knode, vnode in node.value:
            kline, kcol = knode.start_mark.line + 1, knode.start_mark.column + 1
            if knode.tag == _TAG + "merge":
                raise SpecError(
                    "YAML merge keys (<<) are not allowed", path=path, line=kline, col=kcol
                )
            if not isinstance(knode, yaml.ScalarNode):
                raise SpecError(
                    "a mapping key must be a plain name", path=path, line=kline, col=kcol
                )
            if knode.tag != _TAG + "str":
                kind = knode.tag[len(_TAG) :] if knode.tag.startswith(_TAG) else knode.tag
                raise SpecError(
                    f"key {knode.value!r} is read by YAML as a {kind}, not a name; "
                    f"quote it ('{knode.value}')",
                    path=path,
                    line=kline,
                    col=kcol,
                )
            key = knode.value
            if key in items:
                first = keys[key][0]
                raise SpecError(
                    f"duplicate key {key!r} (first at line {first}); YAML would keep only the "
                    f"last one: remove one of them",
                    path=path,
                    line=kline,
                    col=kcol,
                )
            keys[key] = (kline, kcol)
            items[key] = _convert(vnode, path, seen, depth + 1, limits)
        return YMap(items, keys, line, col)
    raise SpecError("unsupported YAML node", path=path, line=line, col=col)  # pragma: no cover


def _clip(raw: str, keep: int = 20) -> str:
    return raw if len(raw) <= keep else f"{raw[:keep]}... ({len(raw)} characters)"


_SCALARS = yaml.constructor.SafeConstructor()
