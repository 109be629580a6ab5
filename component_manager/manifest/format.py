"""Canonical formatting of a ``.cml``: one layout, so diffs show only real changes.

Top-level keys in the order include, program, children, collections, capabilities, use,
offer, expose, config (unknown keys after them, in file order); 4-space indent; unquoted keys
where JSON5 allows; double-quoted strings; trailing commas; a list entry or small object
stays on one line when it fits in 100 columns. Comments are dropped (the parser does not
keep them). Example::

    format_text('{use:[{protocol:"a"}],program:{runner:"python",module:"m"}}')
    # {
    #     program: {
    #         runner: "python",
    #         module: "m",
    #     },
    #     use: [
    #         { protocol: "a" },
    #     ],
    # }
"""

from __future__ import annotations

import json
import re

from . import json5
from .schema import TOP_LEVEL_KEYS

__all__ = ["format_text"]

_WIDTH = 100
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
# Inside entries: the capability name first, then where from/to, then the rest.
_ENTRY_ORDER = ("name", "url", "protocol", "storage", "config", "directory", "from", "to", "as",
                "path", "key", "type", "value", "runner", "module", "binary", "entry")


def format_text(text: str, filename: str = "<string>") -> str:
    """Return ``text`` canonically formatted. Raises ManifestError on a JSON5 syntax error."""
    value = json5.parse(text, filename).value
    if isinstance(value, dict):
        value = _ordered(value, TOP_LEVEL_KEYS)
    return _block(value, 0, 0, force=True) + "\n"


def _ordered(obj: dict, order) -> dict:
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(obj.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def _key(key: str) -> str:
    return key if _IDENT.fullmatch(key) else json.dumps(key)


def _scalar(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _inline(value) -> str:
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)}: {_inline(v)}" for k, v in _ordered(value, _ENTRY_ORDER).items())
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, list):
        return f"[ {', '.join(_inline(v) for v in value)} ]" if value else "[]"
    return _scalar(value)


def _block(value, indent: int, column: int = 0, force: bool = False) -> str:
    """``value`` written at ``column``, its closing bracket at ``indent``; on one line if it
    fits, unless ``force`` (the document and its top-level sections always break)."""
    one = _inline(value)
    if not isinstance(value, (dict, list)) or not value or (not force and column + len(one) <= _WIDTH):
        return one
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = value if indent == 0 else _ordered(value, _ENTRY_ORDER)
        lines = [f"{pad}{_key(k)}: {_block(v, indent + 4, indent + 6 + len(_key(k)), indent == 0)},"
                 for k, v in items.items()]
        return "{\n" + "\n".join(lines) + "\n" + " " * indent + "}"
    lines = [f"{pad}{_block(v, indent + 4, indent + 4)}," for v in value]
    return "[\n" + "\n".join(lines) + "\n" + " " * indent + "]"
