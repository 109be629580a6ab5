"""Open: a running program asks for a capability: route it, start the provider, answer.

This is **the** way components start: a program asks for a protocol it uses; the manager
walks the route, starts the provider if it is not running (start reason
``'/app/client' requested capability 'echo.Echo'``), waits until it is serving, and answers
with the provider's address and a grant for that route. The data path is then direct.

A connect during a stop waits for it and starts the provider again; one whose start is
aborted by a stop tries again (up to ``OPEN_ATTEMPTS`` starts); one that joined a start that
failed makes one start of its own. So a burst of connects during stop/start churn all end
connected to a running provider.

A protocol used ``from: "framework"`` that is one of the manager's control services
(``FRAMEWORK_PROTOCOLS``) is answered with the address of the manager's framework server
and a grant for that one service: a component reaches the control API only when it is
routed to it (the control socket itself refuses programs, see ``api/relay.py``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .. import grants
from ..errors import RouteError, StartAborted, StartError
from ..model.action_set import ActionKind
from ..model.reasons import capability_start_reason
from ..routing.route import route_use
from .context import ActionContext
from .pause import wait_resumed
from .resolve import walk_routes
from .start import start

__all__ = ["FRAMEWORK_PROTOCOLS", "OPEN_ATTEMPTS", "Opened", "open_capability"]

OPEN_ATTEMPTS = 20  # starts a connect makes while stops keep aborting them (stop/start churn)

FRAMEWORK_PROTOCOLS = (
    "component_manager.v1.LifecycleController",
    "component_manager.v1.Realm",
    "component_manager.v1.RealmQuery",
    "component_manager.v1.EventStream",
)


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


async def open_capability(ctx: ActionContext, client, name: str, timeout: float | None = None) -> Opened:
    """Raises RouteError (with the broken hop), StartError (the provider failed to start, or
    is backing off after a failure for longer than ``timeout`` seconds: the caller's deadline)."""
    use = find_use(client, name)
    result = await walk_routes(ctx, lambda view: route_use(view, client.moniker, use))
    if result.status != "ok":
        raise RouteError(str(client.moniker), name, [str(h) for h in result.hops],
                         "optional capability is unavailable (its route ends in void)")
    if result.source == "framework":
        return _open_framework(ctx, client, use, result)
    provider = ctx.find(result.source_moniker)
    reason = capability_start_reason(str(client.moniker), name)
    ctx.events.publish("capability_requested", provider, reason=reason)
    if use.kind == "protocol":
        return await _open_protocol(ctx, client, provider, name, result.source_name, reason, timeout)
    if use.kind == "storage":
        return Opened("storage", str(provider.moniker), path=str(ctx.areas.path_for(client.instance_id, use.target_name)))
    if use.kind == "directory":
        return Opened("directory", str(provider.moniker), path=_directory_path(provider, result))
    return Opened("config", str(provider.moniker), value_json=json.dumps(result.capability.value))


async def _open_protocol(ctx: ActionContext, client, provider, name: str, source_name: str,
                         reason: str, timeout: float | None) -> Opened:
    """``reason``: the start reason, if the provider has to start."""
    run = None
    for _attempt in range(OPEN_ATTEMPTS):
        run = await _running(ctx, provider, reason, timeout)
        if run is not None:
            break
    if run is None or not run.serve_address:
        raise StartError(str(provider.moniker), f"it stopped before '{name}' could be opened; try again")
    run.last_connect = time.monotonic()
    grant = grants.issue(run.grant_key, str(client.moniker), source_name)
    return Opened("protocol", str(provider.moniker), address=run.serve_address, grant=grant)


async def _running(ctx: ActionContext, provider, reason: str, timeout: float | None):
    """The provider's run once it is running, starting it if needed; None if a stop came
    first (the caller tries again: a start registered after a stop is a new start).

    A connect that joined a start in flight which then failed also gets one start of its
    own: it arrived while the program was (re)starting, as a connect during a stop does."""
    if provider.run is not None and provider.run.paused:
        await wait_resumed(provider.run)  # in order; a stop meanwhile sends us on to a new start
    if provider.run is None and provider.restart is not None:  # a back-off: wait for its start
        await provider.restart.wait_scheduled(provider.moniker_text, timeout)
    if provider.run is not None and provider.actions.idle:  # running, nothing in flight:
        return provider.run  # no action
    joined = provider.actions.in_flight(ActionKind.START)
    try:
        await start(ctx, provider, reason)
    except StartAborted:
        return None
    except StartError:
        if not joined or provider.restart is not None:  # its restart policy decides when
            raise
        await start(ctx, provider, reason)
    run = provider.run
    return run if run is not None and not run.stopping else None


def _open_framework(ctx: ActionContext, client, use, result) -> Opened:
    name = result.source_name
    hops = [str(h) for h in result.hops]
    if use.kind != "protocol" or name not in FRAMEWORK_PROTOCOLS:
        raise RouteError(str(client.moniker), use.target_name, hops,
                         f"the component manager provides no {use.kind} '{name}' "
                         f"(it provides the protocols {', '.join(FRAMEWORK_PROTOCOLS)})")
    if not ctx.framework_address:
        raise RouteError(str(client.moniker), use.target_name, hops,
                         "this manager does not serve framework protocols")
    grant = grants.issue(ctx.framework_key, str(client.moniker), name)
    return Opened("protocol", "<framework>", address=ctx.framework_address, grant=grant)


def _directory_path(provider, result) -> str:
    path = Path(result.capability.path)
    return str(path if path.is_absolute() else (provider.package_dir or Path.cwd()) / path)
