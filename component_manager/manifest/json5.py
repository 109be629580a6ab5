"""A small JSON5 parser that remembers where every key is.

Manifest errors must point at ``file:line`` of the offending key, which ``json.loads`` cannot
tell. ``parse`` returns the value (plain dicts, lists, str, int, float, bool, None) together
with a ``positions`` map from a *path* to the ``(line, column)`` where it starts: an object
member's path ends with its key and points at the key; an array element's path ends with its
index and points at the element.

Example::

    >>> doc = parse('{\\n  use: [ { protocol: "a" } ],\\n}', "x.cml")
    >>> doc.value
    {'use': [{'protocol': 'a'}]}
    >>> doc.positions[("use", 0, "protocol")]
    (2, 12)

Supported: ``//`` and ``/* */`` comments, unquoted identifier keys, single or double quoted
strings (with JSON5 escapes and line continuations), trailing commas, hex numbers, leading or
trailing decimal points, ``+``/``-`` signs, ``Infinity`` and ``NaN``.

Raises ManifestError with one Problem carrying line and column, e.g.
``x.cml:3:5: expected ',' or '}'``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from ..errors import ManifestError, Problem
from .limits import MAX_DEPTH, MAX_ELEMENTS, MAX_MANIFEST_BYTES, MAX_NUMBER_CHARS

__all__ = ["Document", "key_path", "parse"]

Path = tuple  # of str keys and int indices

# Whitespace and comments between tokens; JSON5 also allows some Unicode spaces.
_SKIP = re.compile(r"(?:[\s\ufeff\u2028\u2029]+|//[^\n\r]*|/\*(?:[^*]|\*(?!/))*\*/)*")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F]+|Infinity|NaN|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
)
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "0": "\0",
            "'": "'", '"': '"', "\\": "\\", "/": "/"}
_LITERALS = {"true": True, "false": False, "null": None}


@dataclass
class Document:
    """A parsed JSON5 text: its value and where each key and element starts."""

    value: object
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    filename: str = ""


class _Parser:
    def __init__(self, text: str, filename: str):
        self.text = text
        self.filename = filename
        self.pos = 0
        self.positions: dict[Path, tuple[int, int]] = {}
        # Offsets of line starts, so an offset becomes (line, column) by bisection.
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\n|\r", text)]

    # -- positions and errors ------------------------------------------------------------

    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def fail(self, message: str, offset: int | None = None, path: Path = ()):
        """Raise a located problem; with ``path``, at that key (a limit, not a syntax error)."""
        line, column = self.where(self.pos if offset is None else offset)
        raise ManifestError([Problem(self.filename, line, key_path(path), message, column)])

    def skip(self) -> str:
        """Skip whitespace and comments; return the next character ('' at the end)."""
        m = _SKIP.match(self.text, self.pos)
        self.pos = m.end()
        if self.text.startswith("/*", self.pos):
            self.fail("unterminated comment")
        return self.text[self.pos:self.pos + 1]

    # -- grammar -------------------------------------------------------------------------

    def document(self):
        self.skip()
        value = self.value(())
        if self.skip():
            self.fail(f"unexpected {self.text[self.pos]!r} after the end of the document")
        return value

    def value(self, path: Path):
        c = self.skip()
        if c == "{":
            return self.object(path)
        if c == "[":
            return self.array(path)
        if c in "\"'" and c:
            return self.string()
        m = _NUMBER.match(self.text, self.pos)
        if m:
            if m.end() - m.start() > MAX_NUMBER_CHARS:
                self.fail(f"number is too long (more than {MAX_NUMBER_CHARS} characters)", path=path)
            self.pos = m.end()
            return _number(m.group())
        m = _IDENT.match(self.text, self.pos)
        if m and m.group() in _LITERALS:
            self.pos = m.end()
            return _LITERALS[m.group()]
        self.fail("unexpected end of file" if not c else f"unexpected {_show(self.text, self.pos)}")

    def nest(self, path: Path) -> None:
        """Bound the recursion: each level of nesting costs Python two frames."""
        if len(path) >= MAX_DEPTH:
            self.fail(f"nested more than {MAX_DEPTH} levels deep", path=path)
        self.pos += 1

    def count(self, container, path: Path) -> None:
        if len(container) >= MAX_ELEMENTS:
            self.fail(f"more than {MAX_ELEMENTS} elements in one object or list", path=path)

    def object(self, path: Path) -> dict:
        self.nest(path)
        result: dict = {}
        while (c := self.skip()) != "}":
            self.count(result, path)
            start = self.pos
            key = self.key(c)
            if key in result:
                self.fail(f"duplicate key {key!r}", start)
            self.positions[(*path, key)] = self.where(start)
            if self.skip() != ":":
                self.fail("expected ':' after the key")
            self.pos += 1
            result[key] = self.value((*path, key))
            if not self.separator("}"):
                break
        self.pos += 1
        return result

    def array(self, path: Path) -> list:
        self.nest(path)
        result: list = []
        while self.skip() != "]":
            self.count(result, path)
            self.positions[(*path, len(result))] = self.where(self.pos)
            result.append(self.value((*path, len(result))))
            if not self.separator("]"):
                break
        self.pos += 1
        return result

    def separator(self, close: str) -> bool:
        """After a member: consume ',' and return True, or see ``close`` and return False."""
        c = self.skip()
        if c == ",":
            self.pos += 1
            return True
        if c != close:
            self.fail(f"expected ',' or '{close}'" + ("" if c else ", found the end of file"))
        return False

    def key(self, c: str) -> str:
        if c and c in "\"'":
            return self.string()
        m = _IDENT.match(self.text, self.pos)
        if not m:
            self.fail("unexpected end of file" if not c else f"expected a key, found {_show(self.text, self.pos)}")
        self.pos = m.end()
        return m.group()

    def string(self) -> str:
        quote, start = self.text[self.pos], self.pos
        self.pos += 1
        parts = []
        text = self.text
        while True:
            end = _string_end(text, self.pos, quote)
            if end < 0:
                self.fail("unterminated string", start)
            parts.append(text[self.pos:end])
            self.pos = end + 1
            if text[end] == quote:
                return "".join(parts)
            if text[end] != "\\":
                self.fail("unterminated string (a newline inside a string must be escaped)", start)
            parts.append(self.escape())

    def escape(self) -> str:
        c = self.text[self.pos:self.pos + 1]
        self.pos += 1
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c in "\n\u2028\u2029":  # line continuation
            return ""
        if c == "\r":
            self.pos += self.text.startswith("\n", self.pos)
            return ""
        if c in "xu":
            width = 2 if c == "x" else 4
            digits = self.text[self.pos:self.pos + width]
            if not re.fullmatch(r"[0-9a-fA-F]{%d}" % width, digits):
                self.fail(f"bad \\{c} escape", self.pos - 2)
            self.pos += width
            return self.surrogates(int(digits, 16))
        if not c:
            self.fail("unterminated string")
        return c  # JSON5: any other escaped character is itself


    def surrogates(self, code: int) -> str:
        """JSON writes characters beyond U+FFFF as a surrogate pair of \\u escapes: join
        them (a lone surrogate cannot be encoded as UTF-8, so it is refused)."""
        if 0xD800 <= code < 0xDC00:
            low = re.match(r"\\u(d[c-f][0-9a-f]{2})", self.text[self.pos:self.pos + 6], re.I)
            if low:
                self.pos += 6
                return chr(0x10000 + ((code - 0xD800) << 10) + (int(low.group(1), 16) - 0xDC00))
        if 0xD800 <= code < 0xE000:
            self.fail("invalid \\u escape: an unpaired surrogate", self.pos - 6)
        return chr(code)


def key_path(path: Path) -> str:
    """``("use", 0, "from")`` -> ``"use[0].from"``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_STRING_STOP = {q: re.compile(r"[%s\\\n\r]" % q) for q in "'\""}


def _string_end(text: str, pos: int, quote: str) -> int:
    """Index of the first quote, backslash or newline at or after ``pos``, or -1. One
    search that stops at the first hit: ``str.find`` per character would scan to the end
    of the text for each absent one, quadratic over a file of many strings."""
    m = _STRING_STOP[quote].search(text, pos)
    return m.start() if m else -1


def _number(token: str) -> int | float:
    sign = -1 if token[0] == "-" else 1
    body = token.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        return sign * int(body, 16)
    if body == "Infinity":
        return sign * float("inf")
    if body == "NaN":
        return float("nan")
    if re.fullmatch(r"\d+", body):
        return sign * int(body)
    return sign * float(body)


def _show(text: str, pos: int) -> str:
    m = _IDENT.match(text, pos)
    shown = repr(m.group()[:40]) if m else repr(text[pos])
    return shown + ("..." if m and len(m.group()) > 40 else "")


def parse(text: str, filename: str = "<string>") -> Document:
    """Parse JSON5 ``text``; raise ManifestError (with line and column) if it is malformed."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError([Problem(filename, 1, "", f"larger than {MAX_MANIFEST_BYTES} bytes")])
    parser = _Parser(text, filename)
    value = parser.document()
    return Document(value, parser.positions, filename)
