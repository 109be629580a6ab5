"""`cm` as a user meets it: the real executable against a real manager running the example
realm (components/realm.cml: echo_server, echo_client, counter, collection workers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from component_manager.testing.process import ManagerProcess, cm_executable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def cm_popen(manager: ManagerProcess, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*cm_executable(), "--state-dir", str(manager.state_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(process: subprocess.Popen, text: str) -> list[str]:
    """Lines of ``process`` up to and including the first containing ``text`` (a hung
    process is caught by the test timeout)."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never printed; got {lines}; stderr {process.stderr.read()}")


def test_no_manager_is_exit_3_with_one_line(manager_dir):
    manager = ManagerProcess(manager_dir)
    for args in (("list",), ("show", "server"), ("route", "/echo_client"), ("events",), ("storage", "list")):
        result = manager.cm(*args, check=False)
        assert result.returncode == 3, args
        assert result.stderr == (f"cm: no manager is running at {manager_dir.resolve()} "
                                 "(start one with `cm manager run`)\n")


def test_fragments_name_one_instance_or_fail_clearly(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        assert manager.show("server")["moniker"] == "/echo_server"
        assert manager.cm_json("start", "count")["moniker"] == "/counter"
        ambiguous = manager.cm("show", "echo", check=False)
        assert ambiguous.returncode == 1
        assert ambiguous.stderr == "cm: 'echo' matches 2 instances: /echo_server, /echo_client\n"
        missing = manager.cm("show", "nothing_like_it", check=False)
        assert (missing.returncode, missing.stderr) == (4, "cm: instance 'nothing_like_it' not found\n")
        assert manager.cm("show", "/nothing", check=False).returncode == 4


def test_route_of_echo_client_goes_through_root_to_the_server(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        data = manager.cm_json("route", "echo_client", "echo.Echo")
        (route,) = data["routes"]
        assert (data["moniker"], route["status"], route["source_moniker"]) == ("/echo_client", "ok", "/echo_server")
        assert [(h["action"], h["moniker"]) for h in route["hops"]] == [
            ("use", "/echo_client"), ("offer", "/"), ("expose", "/echo_server"), ("declare", "/echo_server")]
        text = manager.cm("route", "/echo_client", "echo.Echo").stdout.splitlines()
        assert text[0] == "use protocol echo.Echo: ok (from /echo_server)"
        assert len(text) == 5 and "\x1b[" not in "".join(text)
        everything = manager.cm_json("route", "/echo_server")["routes"]
        assert {(r["direction"], r["capability"]) for r in everything} >= {("expose", "echo.Echo"), ("use", "data")}
        unknown = manager.cm("route", "/echo_client", "no.Such", check=False)
        assert unknown.returncode == 1 and "no.Such" in unknown.stderr and len(unknown.stderr.splitlines()) == 1


def test_list_and_tree_show_states_without_colour_on_a_pipe(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        listing = manager.cm("list").stdout
        assert "\x1b[" not in listing
        counter = next(line for line in listing.splitlines() if line.startswith("/counter "))
        assert counter.split()[1] == "running"
        tree = manager.cm("tree").stdout.splitlines()
        assert tree[0].startswith("/ ")
        assert any(line.endswith("counter  running") for line in tree)
        assert any(line.endswith("echo_server  stopped") for line in tree)
        rows = manager.cm_json("list")
        assert {"moniker", "url", "instance_id", "state", "execution_state"} <= set(rows[0])


def test_show_and_events_survive_a_kill9_and_restart(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        with manager.events() as events:
            manager.cm("start", "/echo_client")
            events.wait_for(type="stopped", moniker="/echo_client")
        before = manager.cm("events", "--json").stdout.splitlines()
        manager.kill9()
        manager.start()
        shown = manager.show("echo_client")
        assert shown["last_stop"]["exit_code"] == 0 and shown["last_stop"]["reason"]
        after = [json.loads(line) for line in manager.cm("events", "--json").stdout.splitlines()]
        assert after[:len(before)] == [json.loads(line) for line in before]
        stops = [e for e in after if e["type"] == "stopped" and e["moniker"] == "/echo_client"]
        assert stops and stops[-1]["stop"]["exit_code"] == 0
        assert any(e["type"] == "started" and e["moniker"] == "/echo_server" for e in after)
        only = [json.loads(line) for line in
                manager.cm("events", "--json", "--moniker", "echo_client", "--type", "stopped").stdout.splitlines()]
        assert only and {(e["type"], e["moniker"]) for e in only} == {("stopped", "/echo_client")}
        human = manager.cm("events", "--moniker", "/echo_client").stdout
        assert "/echo_client" in human and ", exit 0" in human


def test_events_follow_prints_history_then_live_until_ctrl_c(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        follow = cm_popen(manager, "events", "--follow", "--json", "--type", "started")
        try:
            read_until(follow, '"moniker": "/counter"')  # the stored one
            manager.cm("start", "/echo_server")
            live = json.loads(read_until(follow, '"moniker": "/echo_server"')[-1])
            assert live["type"] == "started"
        finally:
            follow.send_signal(signal.SIGINT)
            assert follow.wait(30) == 0


def test_logs_follow_until_the_instance_is_destroyed(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("run", "/workers:c1", "counter/counter.cml")
        follow = cm_popen(manager, "logs", "c1", "--follow")
        try:
            read_until(follow, "count=1")
            manager.cm("stop", "/workers:c1")
            manager.cm("start", "/workers:c1")
            read_until(follow, "count=2")
            manager.cm("destroy", "/workers:c1")
            assert follow.wait(30) == 0
        finally:
            if follow.poll() is None:
                follow.kill()
        manager.cm("start", "/counter")
        assert "count=1" in manager.cm("logs", "counter").stdout


def test_storage_list_show_and_delete_only_when_stopped(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        rows = manager.cm_json("storage", "list")
        counter = [r for r in rows if r["moniker"] == "/counter"]
        assert [r["name"] for r in counter] == ["data"] and counter[0]["size_bytes"] > 0
        assert {r["moniker"] for r in rows} >= {"/counter", "/echo_server"}
        (shown,) = manager.cm_json("storage", "show", "counter")
        path = Path(shown["path"])
        assert path.exists()
        assert "/counter" in manager.cm("storage", "list").stdout

        refused = manager.cm("storage", "delete", "counter", check=False)
        assert refused.returncode == 1
        assert refused.stderr == "cm: instance '/counter': is running; stop it before deleting its storage\n"
        assert path.exists()

        manager.cm("stop", "/counter")
        deleted = manager.cm_json("storage", "delete", "counter")
        assert [a["name"] for a in deleted["deleted"]] == ["data"]
        assert not path.exists()
        manager.cm("start", "/counter")  # the number starts over
        log = manager.cm("logs", "/counter").stdout
        assert log.strip().splitlines()[-1] == "count=1"


def test_bash_completion_completes_commands_and_monikers(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        script = manager.cm("completion", "bash").stdout
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

        def complete(*words: str) -> list[str]:
            line = " ".join(("cm", "--state-dir", str(manager.state_dir), *words))
            program = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) + 2}; _cm; "
                       'printf "%s\\n" "${COMPREPLY[@]}"')
            out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, check=True)
            return out.stdout.split()

        assert "route" in complete("ro") and "storage" in complete("st")
        assert complete("storage", "d") == ["delete"]
        assert complete("show", "/echo_s") == ["/echo_server"]
        assert set(complete("storage", "show", "/")) >= {"/counter", "/echo_server"}


# Runs one command in-process, then prints its exit code and every module it loaded. Under
# -S (no .pth files) so that the editable install's import finder, which imports pathlib at
# startup, hides nothing; the project and site-packages come first on the path instead.
IMPORTS_OF_A_COMMAND = """
import os, sys
sys.path[:0] = sys.argv[1:3]
sys.stdout = open(os.devnull, "w")
from component_manager.cli.main import run_command
code = run_command(sys.argv[3:])
sys.stdout = sys.__stdout__
print(code, " ".join(sorted(sys.modules)))
"""

# What a read-only command must not import: the daemon's side, manifests, the runtime stubs.
# Nor the other command modules.
NOT_FOR_A_QUERY = ("pydantic", "capnp", "lmdb", "component_manager.manager", "component_manager.model",
                   "component_manager.manifest", "component_manager.storage", "component_manager.runners",
                   "component_manager.actions", "component_manager.sdk", "component_manager._generated.component_pb2")


# What a read-only command may import beyond that: `cm doctor` compiles each manifest to see
# whether it changed since it was resolved (manifest, and what the compiler imports).
ALSO_ALLOWED = {"doctor": ("component_manager.manifest", "pydantic", "capnp")}


# The reads the manager's query socket answers: not even grpc or protobuf (cli/reads.py).
ON_THE_QUERY_SOCKET = {"show", "list", "tree", "logs"}
GRPC = ("grpc", "google.protobuf", "component_manager._generated")


def test_read_only_commands_import_only_grpc_and_the_manager_messages(manager_dir):
    """`cm show` is meant to take half of `supervisorctl status`: the query socket's reads
    load neither grpc (which itself loads asyncio and grpc.aio) nor protobuf; the others
    have grpc and manager_pb2 as their floor; this keeps the rest out."""
    import sysconfig

    import component_manager
    from component_manager.cli.main import COMMANDS

    project = str(Path(component_manager.__file__).resolve().parents[1])
    with ManagerProcess(manager_dir) as manager:
        for args in (("show", "/echo_server"), ("show", "server", "--json"), ("list",), ("tree",), ("logs", "counter"),
                     ("route", "echo_client"), ("events",), ("storage", "list"), ("storage", "show", "counter"),
                     ("graph",), ("graph", "--routes"), ("doctor",)):
            out = subprocess.run([sys.executable, "-S", "-c", IMPORTS_OF_A_COMMAND, project,
                                  sysconfig.get_path("purelib"), "--state-dir", str(manager.state_dir), *args],
                                 capture_output=True, text=True, check=True)
            code, modules = out.stdout.split(" ", 1)
            assert code == "0", (args, out.stderr)
            loaded = set(modules.split())
            if args[0] in ON_THE_QUERY_SOCKET:
                assert sorted(m for m in loaded if m.startswith(GRPC)) == [], args
            else:
                assert "component_manager._generated.manager_pb2" in loaded  # the command did run
            others = {f"component_manager.cli.{m}" for m in COMMANDS.values()} - {
                f"component_manager.cli.{COMMANDS[args[0]]}"}
            allowed = ALSO_ALLOWED.get(args[0], ())
            unwanted = [m for m in loaded if m.startswith(NOT_FOR_A_QUERY) or m in others]
            assert sorted(m for m in unwanted if not m.startswith(allowed)) == [], args
