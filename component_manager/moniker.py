"""Monikers: the path of child names from the root that names an instance.

``/`` is the root, ``/core/echo`` a static child of a static child, and
``/core/workers:job-7`` the dynamic child ``job-7`` in ``/core``'s collection ``workers``.
Every name (child or collection) matches ``[-_.a-z0-9]{1,100}``.

A moniker's string form is canonical: ``parse(str(m)) == m``, and the manager keys its
topology by that string.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import MonikerError

__all__ = ["ChildName", "Moniker", "ROOT", "NAME_PATTERN", "check_name", "parse"]

NAME_PATTERN = r"[-_.a-z0-9]{1,100}"
_NAME = re.compile(NAME_PATTERN)


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid child or collection name, else raise MonikerError."""
    if not _NAME.fullmatch(name):
        raise MonikerError(name, f"{what} must match {NAME_PATTERN}")
    return name


class ChildName(NamedTuple):
    """One step of a moniker: a static child (``collection is None``) or a dynamic one."""

    name: str
    collection: str | None = None

    def __str__(self) -> str:
        return f"{self.collection}:{self.name}" if self.collection else self.name

    @classmethod
    def parse(cls, text: str) -> ChildName:
        collection, sep, name = text.partition(":")
        if not sep:
            return cls(check_name(text, "child name"))
        return cls(check_name(name, "child name"), check_name(collection, "collection name"))


class Moniker(tuple):
    """An immutable sequence of ChildName from the root. ``Moniker()`` is the root."""

    __slots__ = ()

    def __new__(cls, steps=()):
        return super().__new__(cls, steps)

    def __str__(self) -> str:
        return "/" + "/".join(str(step) for step in self)

    def __repr__(self) -> str:
        return f"Moniker({str(self)!r})"

    @property
    def is_root(self) -> bool:
        return not self

    @property
    def parent(self) -> Moniker | None:
        return Moniker(self[:-1]) if self else None

    @property
    def leaf(self) -> ChildName | None:
        return self[-1] if self else None

    def child(self, name: str, collection: str | None = None) -> Moniker:
        return Moniker((*self, ChildName(name, collection)))

    def is_ancestor_of(self, other: Moniker) -> bool:
        return len(other) > len(self) and other[: len(self)] == self


ROOT = Moniker()


def parse(text: str) -> Moniker:
    """Parse an absolute moniker such as ``/core/workers:job-7``.

    Raises MonikerError naming the text and what is wrong with it.
    """
    if not isinstance(text, str) or not text.startswith("/"):
        raise MonikerError(str(text), "a moniker is absolute and starts with '/' (fragments such as "
                                      "'server' are resolved by cm; the API takes absolute monikers)")
    if text == "/":
        return ROOT
    body = text[1:].rstrip("/") if text.endswith("/") and len(text) > 1 else text[1:]
    if not body:
        raise MonikerError(text, "empty moniker")
    try:
        return Moniker(ChildName.parse(step) for step in body.split("/"))
    except MonikerError as e:
        raise MonikerError(text, e.reason) from None
