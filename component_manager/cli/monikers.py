"""Monikers on the command line: absolute (``/echo_server``) or a unique fragment (``server``).

Every command that takes an existing instance's MONIKER goes through ``resolve_moniker``.
An absolute moniker is passed through untouched (the manager says if it does not exist). A
fragment is matched against ``ListInstances`` (one call) in tiers, the first tier with a
match wins:

    1. whole trailing steps:  "echo_server", "workers:c1", "a/b" match "/x/a/b"
    2. part of the last step: "server" matches "/echo_server", "c1" matches "/workers:c1"
    3. part of the moniker:   "work" matches "/workers:c1"

One match: that moniker. Several: AmbiguousMoniker lists them (exit 1). None:
InstanceNotFound (exit 4).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import CmError, InstanceNotFound

__all__ = ["MONIKER_HELP", "AmbiguousMoniker", "match_fragment", "resolve_moniker", "resolve_with"]

MONIKER_HELP = "an absolute moniker (/echo_server) or a unique fragment of one (server)"


class AmbiguousMoniker(CmError):
    def __init__(self, fragment: str, matches: list[str]):
        self.fragment = fragment
        self.matches = matches
        super().__init__(f"'{fragment}' matches {len(matches)} instances: {', '.join(matches)}")


def match_fragment(fragment: str, monikers: list[str]) -> list[str]:
    """The monikers ``fragment`` names, from the first tier (see module doc) that has any."""
    frag = fragment.strip("/")
    tiers = (
        lambda m: m.endswith("/" + frag),
        lambda m: frag in m.rsplit("/", 1)[-1],
        lambda m: frag in m,
    )
    for tier in tiers:
        found = [m for m in monikers if m != "/" and tier(m)]
        if found:
            return found
    return []


def resolve_moniker(client, text: str) -> str:
    """The absolute moniker ``text`` names (see module doc), asking the gRPC ``client`` for
    the monikers. Raises AmbiguousMoniker, InstanceNotFound (exit code 4)."""
    def monikers() -> list[str]:
        from .._generated import manager_pb2  # here: `cm list` and `cm show` go without it

        return [s.moniker for s in client.call(client.query.ListInstances, manager_pb2.ListInstancesRequest()).instances]

    return resolve_with(text, monikers)


def resolve_with(text: str, monikers: Callable[[], list[str]]) -> str:
    """The absolute moniker ``text`` names; ``monikers()`` (called only for a fragment) lists
    every instance's. Raises AmbiguousMoniker, InstanceNotFound."""
    if text.startswith("/") or text == "":
        return text or "/"
    found = match_fragment(text, monikers())
    if len(found) == 1:
        return found[0]
    if found:
        raise AmbiguousMoniker(text, found)
    raise InstanceNotFound(text)
