"""Open a capability for a running program: route it, start the provider, answer.

This is **the** way components start: a program asks for a protocol it uses; the manager
walks the route, starts the provider if it is not running (start reason
``'/app/client' requested capability 'echo.Echo'``), waits until it is serving, and answers
with the provider's address and a grant for that route. The data path is then direct.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .. import grants
from ..errors import RouteError, StartError
from ..model.reasons import capability_start_reason
from .route import route_use

__all__ = ["Opened", "open_capability"]


@dataclass(frozen=True, slots=True)
class Opened:
    kind: str
    provider: str = ""
    address: str = ""
    grant: bytes = b""
    path: str = ""
    value_json: str = ""


def find_use(client, name: str):
    use = next((u for u in client.decl.uses if u.target_name == name), None)
    if use is None:
        raise RouteError(str(client.moniker), name, [], "it does not use a capability by that name")
    return use


async def open_capability(model, client, name: str) -> Opened:
    """Raises RouteError (with the broken hop), StartError (the provider failed to start)."""
    use = find_use(client, name)
    result = route_use(model.view, client.moniker, use)
    if result.status != "ok":
        raise RouteError(str(client.moniker), name, [str(h) for h in result.hops],
                         "optional capability is unavailable (its route ends in void)")
    provider = model.find(result.source_moniker)
    model.events.publish("capability_requested", provider, reason=capability_start_reason(str(client.moniker), name))
    if use.kind == "protocol":
        return await _open_protocol(model, client, provider, name, result.source_name)
    if use.kind == "storage":
        return Opened("storage", str(provider.moniker), path=str(model.areas.path_for(client.instance_id, use.target_name)))
    if use.kind == "directory":
        return Opened("directory", str(provider.moniker), path=_directory_path(provider, result))
    return Opened("config", str(provider.moniker), value_json=json.dumps(result.capability.value))


async def _open_protocol(model, client, provider, name: str, source_name: str) -> Opened:
    await model.start(provider, capability_start_reason(str(client.moniker), name))
    run = provider.run
    if run is None or not run.serve_address:
        raise StartError(str(provider.moniker), f"it stopped before '{name}' could be opened; try again")
    run.last_connect = time.monotonic()
    grant = grants.issue(run.grant_key, str(client.moniker), source_name)
    return Opened("protocol", str(provider.moniker), address=run.serve_address, grant=grant)


def _directory_path(provider, result) -> str:
    from pathlib import Path

    path = Path(result.capability.path)
    return str(path if path.is_absolute() else (provider.package_dir or Path.cwd()) / path)
