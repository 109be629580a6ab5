"""Route reports for ``cm route``: every capability an instance uses or exposes, walked to its
provider, with the hops and where the walk broke.

A report never raises for a broken route: the break is the answer. Example, for
``/echo_client`` in the example realm, ``plan_reports(view, moniker, decl, "echo.Echo")`` is one
RouteReport: direction "use", status "ok", source_moniker "/echo_server", hops::

    use      /echo_client  echo.Echo  protocol from parent
    offer    /             echo.Echo  from #echo_server to echo_client
    expose   /echo_server  echo.Echo  from self
    declare  /echo_server  echo.Echo  protocol

Pure: plain data in, plain dicts out, no event loop; ``api/`` turns the dicts into
RouteReport messages.
"""

from __future__ import annotations

from ..errors import RouteError
from .route import route_expose, route_use

__all__ = ["plan_reports"]


def plan_reports(view, moniker, decl, capability: str = "") -> list[dict]:
    """One dict per use and expose of ``decl`` (declared by ``moniker``): kind, capability,
    direction, status (ok | unavailable | broken), error, source_moniker, hops."""
    reports = []
    for use in decl.uses if decl is not None else ():
        name = use.target_name or use.source_name
        if not capability or capability == name:
            reports.append(_walk(use.kind, name, "use", lambda u=use: route_use(view, moniker, u)))
    for expose in decl.exposes if decl is not None else ():
        name = expose.target_name or expose.source_name
        if not capability or capability == name:
            reports.append(_walk(expose.kind, name, "expose",
                                 lambda k=expose.kind, n=name: route_expose(view, moniker, k, n)))
    if capability and not reports:
        raise RouteError(str(moniker), capability, [],
                         f"'{moniker}' neither uses nor exposes a capability named '{capability}'")
    return reports


def _walk(kind: str, name: str, direction: str, walk) -> dict:
    report = {"kind": kind, "capability": name, "direction": direction, "status": "ok",
              "error": "", "source_moniker": "", "hops": []}
    try:
        result = walk()
    except RouteError as e:
        report.update(status="broken", error=e.reason, hops=_hops(getattr(e, "trace", ())))
        return report
    except Exception as e:  # noqa: BLE001 - an unresolvable manifest on the way is a broken route
        report.update(status="broken", error=str(e))
        return report
    source = str(result.source_moniker) if result.source_moniker is not None else ""
    report.update(status=result.status, source_moniker=source, hops=_hops(result.hops))
    return report


def _hops(hops) -> list[dict]:
    return [{"moniker": h.moniker, "action": h.action, "name": h.name, "detail": h.detail} for h in hops]
