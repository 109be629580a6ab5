"""Grants: proof that the manager routed a capability from a client to a provider.

When the manager answers a Connect, it gives the client a grant for that route: the client's
moniker, the capability's name at the provider, and an HMAC-SHA256 of both under a key the
manager made for that one run of the provider. The client sends it as ``cm-grant-bin`` metadata
on every call; the provider's SDK checks it. A grant is refused when it was made for another
capability, was forged, or was made for an earlier run of the provider (a new run, a new key).

Example::

    key = new_key()
    grant = issue(key, "/app/client", "echo.Echo")
    verify(key, grant, "echo.Echo")    # -> "/app/client"
    verify(key, grant, "other.Thing")  # raises AccessDenied

A provider checks every incoming call, so it keeps a ``Verifier``: the same answers as
``verify``, but the HMAC of a grant is computed once per run (a client sends the same grant
bytes on every call), not once per call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from .errors import AccessDenied

__all__ = ["GRANT_METADATA", "MANAGER_CLIENT", "NOT_ISSUED_HERE", "Verifier", "issue", "new_key", "verify"]

GRANT_METADATA = "cm-grant-bin"  # binary metadata keys must end in -bin
MANAGER_CLIENT = "<manager>"  # the client name of the manager's own calls (OnStop)
_SEP = b"\x00"
# The refusal of a grant made under another key: a client that sees it (after the provider
# restarted) may ask the manager for a new grant.
NOT_ISSUED_HERE = "grant not issued for this provider (forged, or from an earlier run)"


def new_key() -> bytes:
    return secrets.token_bytes(32)


def issue(key: bytes, client: str, capability: str) -> bytes:
    body = client.encode() + _SEP + capability.encode()
    return body + _SEP + hmac.new(key, body, hashlib.sha256).digest()


def verify(key: bytes, grant: bytes, capability: str) -> str:
    """Return the client moniker the grant was issued to, or raise AccessDenied."""
    client, granted = _authentic(key, grant)
    return _for(client, granted, capability)


def _authentic(key: bytes, grant: bytes) -> tuple[str, str]:
    """(client, capability) of a grant made under ``key``, or raise AccessDenied."""
    # The MAC may itself contain NUL bytes: split by its fixed length, not by separator.
    if len(grant) < 34 or grant[-33:-32] != _SEP:
        raise AccessDenied("malformed grant")
    body, mac = grant[:-33], grant[-32:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise AccessDenied(NOT_ISSUED_HERE)
    client, _, granted = body.partition(_SEP)
    return client.decode(), granted.decode()


def _for(client: str, granted: str, capability: str) -> str:
    if granted != capability:
        raise AccessDenied(f"grant is for '{granted}', not '{capability}'")
    return client


class Verifier:
    """``verify`` under one key, remembering the grants it found authentic.

    Only authentic grants are remembered (a forged one is checked again each time, so it
    cannot push the good ones out); the memory is bounded and starts over when full. A new
    key means a new Verifier: nothing verified under the old key survives it.

    Example::

        verifier = Verifier(key)
        verifier.verify(grant, "echo.Echo")   # HMAC computed: "/app/client"
        verifier.verify(grant, "echo.Echo")   # remembered:    "/app/client"
    """

    MAX_REMEMBERED = 4096

    def __init__(self, key: bytes):
        self.key = key
        self._authentic: dict[bytes, tuple[str, str]] = {}

    def verify(self, grant: bytes, capability: str) -> str:
        """Return the client moniker, or raise AccessDenied (the messages of ``verify``)."""
        found = self._authentic.get(grant)
        if found is None:
            if not self.key:
                raise AccessDenied("this component accepts no calls (it has no grant key)")
            found = _authentic(self.key, grant)
            if len(self._authentic) >= self.MAX_REMEMBERED:
                self._authentic.clear()
            self._authentic[grant] = found
        return _for(found[0], found[1], capability)
