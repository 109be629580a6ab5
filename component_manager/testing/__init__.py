"""The test harness: build realms of real and local components into a throwaway manager,
wait for lifecycle events, inject faults, and pytest fixtures (see docs/testing.md).

Example::

    from component_manager.testing import RealmBuilder, stopped

    async def test_server_stops_when_idle(realm_builder):
        realm_builder.add_child("server", url="components/echo/echo_server.cml")
        realm_builder.add_route(protocol="echo.Echo", source="#server", targets=["test"])
        realm_builder.add_route(storage="data", targets=["#server"])
        realm = await realm_builder.build()
        channel = await realm.connect("echo.Echo")
        assert await channel.unary_unary("/echo.Echo/Echo")(b"hi") == b"hello: hi"
        await realm.wait_for(stopped("/server", reason="idle"))
"""

from .events import (EventMatcher, capability_requested, destroyed, event, restart_gave_up,
                     restart_scheduled, restarted, started, stopped)
from .process import EventWatch, ManagerProcess, pid_alive
from .realm import TEST_DRIVER, LocalComponentRunner, Realm, RealmBuilder

__all__ = [
    "TEST_DRIVER",
    "EventMatcher",
    "EventWatch",
    "LocalComponentRunner",
    "ManagerProcess",
    "Realm",
    "RealmBuilder",
    "capability_requested",
    "destroyed",
    "event",
    "pid_alive",
    "restart_gave_up",
    "restart_scheduled",
    "restarted",
    "started",
    "stopped",
]
