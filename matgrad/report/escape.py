"""The one escape boundary: user text (ids, titles, sources, latex, file names, expressions,
messages that quote a file) is escaped here, where it leaves the program, for the sink it
enters. Every renderer and every command prints user text through one of these functions.

- any sink, first: :func:`visible` (control characters written out)
- terminal: :func:`terminal` (a str for ``rich.text.Text`` or plain printing), :func:`text`
  (a ``Text``), :func:`markup` (inside a rich markup string)
- CI log lines: :func:`log_lines` (part of every plain-text sink)
- HTML: :func:`html`
- Markdown table cells: :func:`markdown` (:func:`markdown_trusted` for matgrad's own text)
- JUnit / XML: :func:`xml`, :func:`xml_document`
- CSV: :func:`csv_cell`
- JSON that is printed: :func:`json_text`
- GitHub workflow commands: :func:`workflow_data`, :func:`workflow_property`

No torch, and rich only inside the functions that return rich objects.
"""

from __future__ import annotations

import html as _html
import json as _json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

# C0 controls (but tab and newline), DEL, C1 controls (8-bit CSI and OSC among them), lone
# surrogates, the two non-characters XML forbids, the bidirectional overrides, embeddings,
# isolates and marks that can make a line read differently from what it holds, and the
# invisible characters that can hide text or split a word a reader (or a filter) sees whole:
# zero-width space, word joiner, invisible operators, the byte-order mark. ZWJ and ZWNJ stay:
# emoji sequences and Persian script need them, and they change no meaning.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
    "\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def _show(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, newlines: bool = True) -> str:
    """``text`` with each control character written out as ``\\xNN`` (``\\uNNNN``), so that
    no output carries a raw escape sequence; with ``newlines=False`` newlines go too.

    >>> visible("a\\x1b]0;pwned\\x07b\\u202e")
    'a\\\\x1b]0;pwned\\\\x07b\\\\u202e'
    """
    out = _HIDDEN.sub(_show, text)
    if not newlines:
        out = out.replace("\n", "\\n")
    return out


# A CI runner reads the output line by line and runs a line as a command when, after leading
# white space, it starts with ``::`` (GitHub Actions workflow commands) or ``##[`` (the older
# form). So no line that holds user text may start that way.
_COMMAND_LINE = re.compile(r"(^|\n)([^\S\n]*)(?::(?=:)|#(?=#\[))")


def log_lines(text: str, colon: str = "\\x3a", number_sign: str = "\\x23") -> str:
    """``text`` (already made :func:`visible`) with the first character of each line that a CI
    runner would take for a command written out: ``::error`` -> ``\\x3a:error``. Formats with
    a lossless escape of their own pass it as ``colon`` and ``number_sign`` (``&#58;``,
    ``&#35;``)."""

    def sub(m: re.Match[str]) -> str:
        return m.group(1) + m.group(2) + (colon if m.group(0).endswith(":") else number_sign)

    return _COMMAND_LINE.sub(sub, text)


def terminal(text: object, *, newlines: bool = False) -> str:
    """User text for the terminal (or a CI log), to go into ``rich.text.Text`` or plain
    ``print``: control characters written out, no line that a CI runner would execute. One
    line unless ``newlines``. Rich markup is *not* escaped: use :func:`markup` for that."""
    return log_lines(visible(str(text), newlines=newlines))


def markup(text: object, *, newlines: bool = False) -> str:
    """User text to interpolate into a rich markup string: :func:`terminal`, then markup
    escaped, so ``[bold red]x[/]`` prints as itself."""
    from rich.markup import escape

    return escape(terminal(text, newlines=newlines))


def text(value: object, style: str = "", *, newlines: bool = False) -> Text:
    """User text as a ``rich.text.Text`` (never read as markup)."""
    from rich.text import Text

    return Text(terminal(value, newlines=newlines), style=style)


def html(value: object) -> str:
    """User text for HTML, in an element or a quoted attribute."""
    return log_lines(_html.escape(visible(str(value)), quote=True), "&#58;", "&#35;")


# Markdown punctuation that could start emphasis, a link, code, HTML, an entity, a heading or
# a table cell's end.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#!|~&$^])")
# What GitHub links or notifies without any markup: URLs (``https://…``, ``www.…``),
# e-mail addresses and ``@user``/``@org/team`` mentions. A word joiner (U+2060, written as
# an entity) after the scheme, ``www`` or ``@`` keeps the text as it reads and breaks the link.
_JOINER = "&#8288;"
_MD_LINKS = (
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*)(?=://)"), r"\1" + _JOINER),
    (re.compile(r"(?i)\b(www)(?=\.)"), r"\1" + _JOINER),
    (re.compile("@"), "@" + _JOINER),
)


def markdown(value: object) -> str:
    """User text for one Markdown table cell (GitHub-flavoured): punctuation backslash-
    escaped (no emphasis, link, code, HTML, entity or heading), ``|`` cannot end the cell,
    newlines become ``<br>``, and no URL or mention turns into a link or a ping."""
    out = _MD_SPECIAL.sub(r"\\\1", visible(str(value)))
    for pattern, repl in _MD_LINKS:
        out = pattern.sub(repl, out)
    return out.replace("\r", "").replace("\n", "<br>")


def markdown_trusted(value: str) -> str:
    """Text matgrad itself wrote (the function and domain references), for a Markdown table
    cell: its own Markdown stays; only ``|`` and newlines, which would break the table, go."""
    return value.replace("|", "\\|").replace("\n", " ")


def xml(value: object) -> str:
    """User text for an XML text node or attribute built with ElementTree (which escapes
    markup): the characters XML 1.0 cannot hold are written out."""
    return visible(str(value))


def xml_document(document: str) -> str:
    """A serialized XML document whose text lines cannot run as CI commands (the first
    ``:`` of such a line becomes the character reference ``&#58;``: same document)."""
    return log_lines(document, "&#58;", "&#35;")


# A spreadsheet runs a cell starting with one of these as a formula (OWASP: CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A text cell of a CSV file (never a number): control characters written out, a
    leading ``'`` when a spreadsheet would read a formula, no CI command line."""
    out = visible(value)
    if out.startswith(_FORMULA_START):
        out = "'" + out
    return log_lines(out)


def json_text(obj: Any, **dumps: Any) -> str:
    """``json.dumps(obj, **dumps)`` with the characters :func:`visible` writes out given as
    JSON ``\\uXXXX`` escapes even under ``ensure_ascii=False``: the same data, but nothing a
    terminal would act on when the JSON is printed."""
    out = _json.dumps(obj, **dumps)
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


def workflow_data(value: object) -> str:
    """The message of a GitHub Actions workflow command (``::error …::MESSAGE``), %-escaped
    as GitHub's toolkit does."""
    return visible(str(value)).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(value: object) -> str:
    """A property value of a workflow command (``file=…,title=…``): ``:`` and ``,`` too."""
    return workflow_data(value).replace(":", "%3A").replace(",", "%2C")
