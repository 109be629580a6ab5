"""The main job: a manager running the example realm, driven by `cm` as a user would.

Shows lazy start through a capability route, the idle stop, state that survives stop, start
and a manager restart, a program adopted by a manager that replaced a killed one, a
destroyed dynamic child coming back as a new identity, many instances started and
stopped by one request, a storage backup restored, a paused
server whose client waits until it is resumed, a reload that restarts only the component
whose manifest changed, the governing policies (a crash restarted after a back-off, a
failing liveness probe), and `cm doctor`; it ends by saying how to open `cm ui` and `cm graph`
(it leaves nothing running). With ``CM_DEMO_RAY=1`` it also runs the echo server on a Ray
worker node of a local cluster (docs/scale-out.md; about 15 s more). Every line it prints is a real `cm` command and its real output.
The realm is a copy of components/ in the demo's state folder, so that the demo can edit a
manifest.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from component_manager.testing.process import ManagerProcess  # noqa: E402

STATE = ROOT / ".cm-demo"
PACKAGE = STATE / "pkg"  # a copy of the example realm's package, edited by the reload step


def step(title: str) -> None:
    print(f"\n== {title}")


def run(manager: ManagerProcess, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run `cm ARGS`, print it and its output; any exit code outside ``ok`` ends the demo."""
    result = manager.cm(*args, check=False)
    print(f"$ cm {' '.join(args)}")
    out = (result.stdout + result.stderr).rstrip()
    if out:
        print("  " + out.replace("\n", "\n  "))
    if result.returncode not in ok:
        raise SystemExit(f"demo failed: cm {' '.join(args)} exited {result.returncode}")
    return result.stdout



def many_at_once(manager: ManagerProcess) -> None:
    """One request for many instances, and a backup of storage that a restore brings back."""
    step("many at once: two more workers, all started by one request (a pattern), all stopped by one")
    run(manager, "create", "/workers:c2", "counter/counter.cml")
    run(manager, "create", "/workers:c3", "counter/counter.cml")
    run(manager, "start", "/workers:*")
    run(manager, "stop", "/workers:*")
    step("a backup: snapshot the counter's storage, count on, restore: the count goes back")
    run(manager, "storage", "snapshot", "/counter")
    run(manager, "stop", "/counter")
    run(manager, "start", "/counter")
    run(manager, "stop", "/counter")
    run(manager, "storage", "restore", "/counter")
    run(manager, "start", "/counter")
    run(manager, "logs", "/counter", "-n", "3")
    run(manager, "show", "/counter")


def keep_running(manager: ManagerProcess) -> None:
    """The governing policies: a crash that is restarted, a probe that fails."""
    step("keeping things running: unhealthy reports NOT_SERVING after 1.5s; its probe will notice")
    with manager.events() as events:
        run(manager, "start", "/unhealthy")
        step("flaky crashes on every second start: start, stop, start again (start 2 crashes)")
        run(manager, "start", "/flaky")
        run(manager, "stop", "/flaky")
        run(manager, "start", "/flaky")
        scheduled = events.wait_for(type="restart_scheduled", moniker="/flaky", timeout=30)
        print(f"  event: {scheduled['moniker']} restart_scheduled: {scheduled['detail']}")
        fired = events.wait_for(lambda e: e["type"].startswith("trigger_") and e["moniker"] == "/flaky", timeout=30)
        print(f"  event: /flaky {fired['type']}: {fired['detail']}")
        run(manager, "tree")
        events.wait_for(lambda e: e["type"] == "started" and e["moniker"] == "/flaky", timeout=30)
        run(manager, "logs", "/flaky")
        run(manager, "show", "/flaky")
        sick = events.wait_for(type="stopped", moniker="/unhealthy", timeout=30)
        print(f"  event: /unhealthy stopped, reason {sick['reason']}: {sick['stop']['detail']}")
        events.wait_for(type="restart_scheduled", moniker="/unhealthy", timeout=30)
        run(manager, "show", "/unhealthy")


def pause_and_reload(manager: ManagerProcess) -> None:
    step("pause the echo server: its program is frozen (and its idle clock stands still)")
    run(manager, "start", "/echo_server")
    run(manager, "pause", "/echo_server")
    server_pid = manager.show("/echo_server")["pid"]
    step("edit the counter's manifest (stop_timeout), then reload: only the counter restarts")
    manifest = PACKAGE / "components" / "counter" / "counter.cml"
    manifest.write_text(manifest.read_text().replace('ready: "serving",', 'ready: "serving", stop_timeout: "2s",'))
    print(f"  edited {manifest.relative_to(ROOT)}")
    run(manager, "reload")
    run(manager, "show", "/counter")
    print(f"  /echo_server kept its pid: {manager.show('/echo_server')['pid'] == server_pid}")
    step("start the client: its connect to the paused server waits; resume: it is answered")
    with manager.events() as events:
        run(manager, "start", "/echo_client")
        events.wait_for(type="capability_requested", moniker="/echo_server")
        run(manager, "list")
        run(manager, "resume", "/echo_server")
        events.wait_for(type="stopped", moniker="/echo_client")
    run(manager, "logs", "/echo_client")

def main() -> int:
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.copytree(ROOT / "components", PACKAGE / "components", ignore=shutil.ignore_patterns("__pycache__"))
    manager = ManagerProcess(STATE / "state", root=str(PACKAGE / "components" / "realm.cml"))
    step(f"start a manager with the example realm (a copy of components/ in {STATE.name}/pkg)")
    manager.start()
    try:
        run(manager, "tree")
        step("nothing runs until asked: start the client; it connects to echo.Echo, "
             "which starts the server lazily")
        with manager.events() as events:
            run(manager, "start", "/echo_client")
            events.wait_for(type="stopped", moniker="/echo_client")
            run(manager, "logs", "/echo_client")
            run(manager, "show", "/echo_server")
            step("the server has idle_timeout 3s: wait for its idle stop")
            event = events.wait_for(type="stopped", moniker="/echo_server", timeout=30)
            print(f"  event: {event['moniker']} stopped, reason {event['reason']}")
        step("counter keeps a number in its LMDB storage: start, stop, start")
        run(manager, "start", "/counter")
        run(manager, "stop", "/counter")
        run(manager, "start", "/counter")
        run(manager, "logs", "/counter")
        pause_and_reload(manager)
        step("restart the manager (ordered shutdown, then start on the same state)")
        print(f"  manager exited with {manager.terminate()}")
        manager.start()
        run(manager, "start", "/counter")
        run(manager, "logs", "/counter")
        step("kill -9 the manager: the counter runs on; the new manager adopts it (same pid)")
        pid = manager.show("/counter")["pid"]
        manager.kill9()
        manager.start()
        adopted = manager.show("/counter")
        print(f"  before: pid {pid}; after: pid {adopted['pid']}, {adopted['execution_state']}")
        if adopted["pid"] != pid:
            raise SystemExit("demo failed: the counter was not adopted")
        step("a dynamic child: create, start, destroy, create again: a new identity, count from 1")
        run(manager, "create", "/workers:c1", "counter/counter.cml")
        run(manager, "start", "/workers:c1")
        run(manager, "restart", "/workers:c1")
        run(manager, "destroy", "/workers:c1")
        run(manager, "create", "/workers:c1", "counter/counter.cml")
        run(manager, "start", "/workers:c1")
        run(manager, "logs", "/workers:c1")
        many_at_once(manager)
        keep_running(manager)
        run(manager, "list")
        step("anything wrong? (exit 1 if so, each problem with what to run next)")
        run(manager, "doctor", ok=(0, 1))  # 1: it found something, and says what to run
        run(manager, "graph", "--routes", "-o", str(STATE / "realm.dot"))
        print(f"  wrote {STATE.name}/realm.dot (--format svg draws it with Graphviz)")
    finally:
        step("ordered shutdown")
        manager.close()
        print("  done; state kept in", STATE)
    if os.environ.get("CM_DEMO_RAY") == "1":
        on_ray()
    point_to_pictures()
    return 0


def on_ray() -> None:
    """The echo server on a Ray worker node: lazily started from the client's connect,
    shown with its node, its storage snapshot taken when it stops."""
    from component_manager.runners.ray_runner import ray_available

    step("beyond one host: a local Ray cluster (a head and 2 worker nodes, loopback only); "
         "echo_server placed on node1")
    why = ray_available()
    if why:
        print(f"  skipped: {why}")
        return
    manager = ManagerProcess(STATE / "ray-state", root=str(PACKAGE / "components" / "realm.cml"),
                             args=("--ray", "local:2", "--ray-place", "echo_server=node1"))
    print("$ cm manager run --ray local:2 --ray-place echo_server=node1")
    manager.start()
    try:
        with manager.events() as events:
            run(manager, "start", "/echo_client")
            events.wait_for(type="stopped", moniker="/echo_client")
            run(manager, "logs", "/echo_client")
            run(manager, "list")
            run(manager, "route", "/echo_client", "echo.Echo")
            step("its idle stop: the actor snapshots its storage on node1, the manager keeps it")
            events.wait_for(type="stopped", moniker="/echo_server", timeout=30)
            run(manager, "show", "/echo_server")
    finally:
        manager.close()
        print("  the manager stopped its Ray cluster with it")


def point_to_pictures() -> None:
    """The page and the picture are for a person to open: say how, leave nothing running."""
    state, root = (path.relative_to(ROOT) for path in (STATE / "state", PACKAGE / "components" / "realm.cml"))
    cm = f".venv/bin/cm --state-dir {state}"
    step("see it: the same realm as a live web page and as a picture")
    lines = [(f"{cm} manager run --detach --root {root}", "the manager again, on the demo's state"),
             (f"{cm} ui", "prints a URL with a token: tree, graph, buttons, events"),
             (f"{cm} graph --routes --format svg -o realm.svg", "the picture (needs Graphviz)"),
             (f"kill $(cat {state}/manager.pid)", "ordered shutdown")]
    width = max(len(command) for command, _ in lines)
    for command, why in lines:
        print(f"  {command:<{width}}  # {why}")


if __name__ == "__main__":
    sys.exit(main())
