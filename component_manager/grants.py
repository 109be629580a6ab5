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
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from .errors import AccessDenied

__all__ = ["GRANT_METADATA", "MANAGER_CLIENT", "issue", "new_key", "verify"]

GRANT_METADATA = "cm-grant-bin"  # binary metadata keys must end in -bin
MANAGER_CLIENT = "<manager>"  # the client name of the manager's own calls (OnStop)
_SEP = b"\x00"


def new_key() -> bytes:
    return secrets.token_bytes(32)


def issue(key: bytes, client: str, capability: str) -> bytes:
    body = client.encode() + _SEP + capability.encode()
    return body + _SEP + hmac.new(key, body, hashlib.sha256).digest()


def verify(key: bytes, grant: bytes, capability: str) -> str:
    """Return the client moniker the grant was issued to, or raise AccessDenied."""
    # The MAC may itself contain NUL bytes: split by its fixed length, not by separator.
    if len(grant) < 34 or grant[-33:-32] != _SEP:
        raise AccessDenied("malformed grant")
    body, mac = grant[:-33], grant[-32:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise AccessDenied("grant not issued for this provider (forged, or from an earlier run)")
    client, _, granted = body.partition(_SEP)
    if granted.decode() != capability:
        raise AccessDenied(f"grant is for '{granted.decode()}', not '{capability}'")
    return client.decode()
