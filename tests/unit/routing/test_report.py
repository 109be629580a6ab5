"""Route reports (`cm route`): every use and expose with its status and hops."""

import pytest

from component_manager.errors import RouteError
from component_manager.manifest.decl import ComponentDecl
from component_manager.moniker import parse
from component_manager.routing.report import plan_reports

from .test_route import PROTO, DictView, children, expose, offer, use

pytestmark = pytest.mark.timeout(10)


def realm(server_exposes=True):
    return DictView({
        "/": ComponentDecl(children=children("client", "server"),
                           offers=(offer("client", "child", child="server"),)),
        "/client": ComponentDecl(uses=(use(),)),
        "/server": ComponentDecl(capabilities=(PROTO,), exposes=(expose("self"),) if server_exposes else ()),
    })


def test_ok_use_has_source_and_hops():
    view = realm()
    (report,) = plan_reports(view, parse("/client"), view.decl(parse("/client")))
    assert report["status"] == "ok" and report["direction"] == "use"
    assert report["source_moniker"] == "/server"
    assert [(h["action"], h["moniker"]) for h in report["hops"]] == [
        ("use", "/client"), ("offer", "/"), ("expose", "/server"), ("declare", "/server")]


def test_expose_is_reported_too():
    view = realm()
    (report,) = plan_reports(view, parse("/server"), view.decl(parse("/server")), "echo.Echo")
    assert (report["direction"], report["status"], report["source_moniker"]) == ("expose", "ok", "/server")


def test_broken_route_is_an_answer_not_an_error():
    view = realm(server_exposes=False)
    (report,) = plan_reports(view, parse("/client"), view.decl(parse("/client")))
    assert report["status"] == "broken"
    assert "does not expose it" in report["error"]
    assert [h["action"] for h in report["hops"]] == ["use", "offer"]


def test_unknown_capability_names_it():
    view = realm()
    with pytest.raises(RouteError) as e:
        plan_reports(view, parse("/client"), view.decl(parse("/client")), "nope.Nope")
    assert "nope.Nope" in str(e.value) and "/client" in str(e.value)
