"""Pure helpers of `cm`: fragments, colour, tables, trees, routes, events, completion."""

import pytest

from component_manager.cli import output
from component_manager.cli.exitcodes import exit_code
from component_manager.cli.query_cmds import format_list, format_tree
from component_manager.cli.monikers import AmbiguousMoniker, match_fragment, resolve_moniker
from component_manager.errors import InstanceNotFound

pytestmark = pytest.mark.timeout(10)

MONIKERS = ["/", "/echo_server", "/echo_client", "/counter", "/workers:c1", "/workers:c2"]


@pytest.mark.parametrize("fragment, expected", [
    ("echo_server", ["/echo_server"]),
    ("server", ["/echo_server"]),
    ("counter", ["/counter"]),
    ("workers:c1", ["/workers:c1"]),
    ("c1", ["/workers:c1"]),
    ("echo", ["/echo_server", "/echo_client"]),
    ("workers", ["/workers:c1", "/workers:c2"]),
    ("nothing", []),
])
def test_match_fragment_tiers(fragment, expected):
    assert match_fragment(fragment, MONIKERS) == expected


def test_whole_step_match_beats_a_longer_name_containing_it():
    assert match_fragment("counter", ["/counter", "/counter_two"]) == ["/counter"]


class FakeClient:
    """The one call resolve_moniker makes: ListInstances."""

    def __init__(self, monikers):
        from component_manager._generated import manager_pb2 as pb

        self.reply = pb.ListInstancesReply(instances=[pb.InstanceSummary(moniker=m) for m in monikers])
        self.query = type("Q", (), {"ListInstances": object()})()
        self.calls = 0

    def call(self, method, request):
        self.calls += 1
        return self.reply


def test_resolve_moniker_absolute_needs_no_call():
    client = FakeClient(MONIKERS)
    assert resolve_moniker(client, "/anything") == "/anything"
    assert client.calls == 0


def test_resolve_moniker_ambiguous_and_missing():
    client = FakeClient(MONIKERS)
    assert resolve_moniker(client, "server") == "/echo_server"
    with pytest.raises(AmbiguousMoniker) as e:
        resolve_moniker(client, "echo")
    assert str(e.value) == "'echo' matches 2 instances: /echo_server, /echo_client"
    with pytest.raises(InstanceNotFound) as e:
        resolve_moniker(client, "nope")
    assert exit_code(e.value) == 4


class Tty:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_colour_only_on_a_tty_without_no_color_and_never_for_json(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    plain, jsonish = type("A", (), {"json": False})(), type("A", (), {"json": True})()
    assert output.colour_enabled(plain, Tty(True))
    assert not output.colour_enabled(plain, Tty(False))
    assert not output.colour_enabled(jsonish, Tty(True))
    monkeypatch.setenv("NO_COLOR", "")
    assert not output.colour_enabled(plain, Tty(True))


def row(moniker, execution="stopped", state="resolved", disposition=None, reason=None, pid=None, status=None):
    """A `cm list --json` row; ``status`` is the manager's (model.reasons.status_of, tested
    with real crashes in tests/model and tests/integration)."""
    return {"moniker": moniker, "url": f"file://{moniker}.cml", "instance_id": "ab" * 16, "state": state,
            "execution_state": execution, "pid": pid, "last_stop_disposition": disposition,
            "last_stop_reason": reason, "status": status or (state if state != "resolved" else execution)}


CRASHED = {"disposition": "killed", "reason": "crashed", "status": "failed"}


def test_state_labels_and_colours():
    assert output.state_label(row("/a", "running")) == "running"
    assert output.state_colour(row("/a", "running")) == "green"
    assert output.state_label(row("/a", **CRASHED)) == "failed"
    assert output.state_colour(row("/a", disposition="stopped", reason="start_failed", status="failed")) == "red"
    assert output.state_colour(row("/a", disposition="stopped", reason="idle")) == "dim"
    assert output.state_label(row("/a", state="unresolved")) == "unresolved"


def test_list_aligns_columns_and_colours_only_when_enabled():
    rows = [row("/", "running", pid=10), row("/echo_server"), row("/workers:c1", **CRASHED)]
    text = format_list(rows)
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert lines[0].split() == ["MONIKER", "STATUS", "PID", "ID", "URL"]
    assert lines[0].index("STATUS") == lines[2].index("stopped") == lines[3].index("failed")
    coloured = format_list(rows, colour=True)
    assert "\x1b[32mrunning" in coloured and "\x1b[31mfailed" in coloured and "\x1b[2mstopped" in coloured


def test_tree_draws_branches_with_states():
    rows = [row("/", "running"), row("/a"), row("/a/b", "running"), row("/c", **CRASHED)]
    assert format_tree(rows) == "\n".join([
        "/  running",
        "├── a  stopped",
        "│   └── b  running",
        "└── c  failed (crashed)",
    ])


OK_ROUTE = {"kind": "protocol", "capability": "echo.Echo", "direction": "use", "status": "ok", "error": None,
            "source_moniker": "/echo_server", "hops": [
                {"moniker": "/echo_client", "action": "use", "name": "echo.Echo", "detail": "protocol from parent"},
                {"moniker": "/", "action": "offer", "name": "echo.Echo", "detail": "from #echo_server to echo_client"},
                {"moniker": "/echo_server", "action": "expose", "name": "echo.Echo", "detail": "from self"},
                {"moniker": "/echo_server", "action": "declare", "name": "echo.Echo", "detail": "protocol"}]}


def test_route_trace_one_line_per_hop():
    lines = output.format_route(OK_ROUTE).splitlines()
    assert lines[0] == "use protocol echo.Echo: ok (from /echo_server)"
    assert len(lines) == 5
    assert lines[2].split()[:3] == ["offer", "/", "echo.Echo"]
    assert "✗" not in "\n".join(lines)


def test_broken_route_marks_the_last_hop_and_says_why():
    broken = {**OK_ROUTE, "status": "broken", "source_moniker": None, "hops": OK_ROUTE["hops"][:2],
              "error": "offered by '/' from '#echo_server', but '/echo_server' does not expose it"}
    lines = output.format_route(broken).splitlines()
    assert lines[0] == "use protocol echo.Echo: broken"
    assert lines[1].startswith("   use") and lines[2].startswith(" ✗ offer")
    assert lines[3] == " ✗ broken: " + broken["error"]


def test_event_line_has_time_type_moniker_reason_and_outcome():
    event = {"seq": 3, "timestamp": 1700000000.25, "type": "stopped", "moniker": "/echo_server",
             "reason": "idle", "stop": {"reason": "idle", "disposition": "stopped", "exit_code": 0,
                                        "signal": None, "run_time_s": 3.1, "failed": False}, "detail": None}
    line = output.format_event(event)
    assert line.endswith("stopped     /echo_server  idle  stopped, exit 0")
    assert ".250" in line
    crashed = {**event, "reason": "crashed", "stop": {**event["stop"], "reason": "crashed", "disposition": "killed",
                                                      "exit_code": None, "signal": 11, "failed": True}}
    assert "\x1b[31mkilled, signal 11" in output.format_event(crashed, enabled=True)


def test_sizes():
    assert output.format_size(512) == "512 B"
    assert output.format_size(8192) == "8.0 KiB"


def test_completion_script_knows_commands_and_moniker_commands():
    import subprocess

    from component_manager.cli.completion_cmds import bash_script, command_table
    from component_manager.cli.main import build_parser

    subs, _, takes_moniker = command_table(build_parser())
    assert {"route", "events", "storage", "show", "completion"} <= set(subs[""])
    assert {"show", "route", "storage show", "storage delete", "logs"} <= set(takes_moniker)
    assert "create" not in takes_moniker
    script = bash_script(build_parser())
    assert "complete -F _cm cm" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_state_dir_is_taken_before_or_after_the_command():
    from component_manager.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["--state-dir", "/a", "manager", "run"]).state_dir == "/a"
    assert parser.parse_args(["manager", "run", "--state-dir", "/b", "--root", "r.cml"]).state_dir == "/b"
    assert parser.parse_args(["show", "/x", "--state-dir", "/c"]).state_dir == "/c"
    assert parser.parse_args(["list"]).state_dir == parser.get_default("state_dir")


def test_show_prints_config_values_as_json_and_skips_empty_sections():
    from component_manager._generated import manager_pb2
    from component_manager.api.messages import show_dict
    from component_manager.cli.query_cmds import format_show

    details = manager_pb2.InstanceDetails(
        summary=manager_pb2.InstanceSummary(moniker="/echo_server", url="file:///e.cml", instance_id="ab12",
                                            state="resolved", execution_state="stopped"),
        config=[manager_pb2.ConfigValue(key="greeting", value_json='"hello"'),
                manager_pb2.ConfigValue(key="limits", value_json='{"n": 3}')])
    info = show_dict(details)
    assert info["config"] == {"greeting": "hello", "limits": {"n": 3}}
    assert info["last_stop"] is None and info["pid"] is None
    assert format_show(info).splitlines() == [
        "Moniker         /echo_server", "URL             file:///e.cml", "Instance ID     ab12",
        "State           resolved (stopped)",
        'Config          greeting = "hello"', 'Config          limits = {"n": 3}']
    assert show_dict(manager_pb2.InstanceDetails())["config"] == {}
