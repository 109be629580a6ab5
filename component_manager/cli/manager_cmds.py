"""`cm manager run`, and the commands that change a running manager's instances: start,
stop, destroy, resolve, reset, create, run. Each takes ``--json`` (the instance's summary, as
``cm list --json`` shows it). The read-only commands are in query_cmds.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from .._generated import manager_pb2
from ..api.messages import summary_dict
from ..errors import MonikerError
from ..moniker import parse
from . import many
from .client import Client, RemoteError
from .exitcodes import EXIT_ERROR
from .monikers import MONIKER_HELP, resolve_moniker

__all__ = ["register"]

# command -> help; each takes --json and an instance's MONIKER (create and run: PARENT/COLL:NAME URL)
_ACTIONS = {
    "start": "start an instance (and what it needs)",
    "stop": "stop an instance (reason: requested)",
    "destroy": "destroy a dynamic instance and its storage",
    "resolve": "resolve an instance's manifest",
    "reset": "forget an instance's restart state (a given-up instance may start again)",
    "create": "create a dynamic child",
    "run": "create a dynamic child and start it",
}


def register(sub, command: str) -> None:
    """Add the parser of ``command``: manager, or one of _ACTIONS."""
    if command == "manager":
        return _register_manager(sub)
    parser = sub.add_parser(command, help=_ACTIONS[command])
    parser.add_argument("--json", action="store_true", help="print JSON")
    if command in ("create", "run"):
        parser.add_argument("moniker", help="PARENT/COLLECTION:NAME, e.g. /workers:c1")
        parser.add_argument("url")
        parser.set_defaults(handler=_create, start_child=command == "run")
        if command == "run":
            parser.add_argument("--settle", type=float, default=1.0, metavar="SECONDS",
                                help="a program that ends within this time after starting failed (default 1)")
            parser.add_argument("--keep", action="store_true", help="keep the child when it fails to run")
    elif command in ("start", "stop"):
        parser.add_argument("moniker", nargs="+", help=MONIKER_HELP + "; several, or a pattern "
                            "('/workers:*'), in one request: each done as alone, all at once")
        parser.set_defaults(handler=_start if command == "start" else _stop)
    else:
        parser.add_argument("moniker", help=MONIKER_HELP)
        parser.set_defaults(handler={"destroy": _destroy, "resolve": _resolve, "reset": _reset}[command])


def _register_manager(sub) -> None:
    manager = sub.add_parser("manager", help="run the component manager")
    manager_sub = manager.add_subparsers(dest="manager_command", metavar="SUBCOMMAND", required=True)
    run = manager_sub.add_parser("run", help="run the manager (foreground; SIGTERM/Ctrl-C: ordered shutdown)")
    run.add_argument("--root", help="URL of the root component (default: the example realm)")
    run.add_argument("--package-root", action="append", default=[], metavar="DIR",
                     help="a folder component URLs may resolve under, besides the root "
                          "manifest's folder (repeatable)")
    run.add_argument("--detach", action="store_true", help="run in the background; pid in STATE_DIR/manager.pid")
    run.add_argument("--max-running", type=_count, default=0, metavar="N",
                     help="budget: at most N programs run at once (lower priority ones are evicted)")
    run.add_argument("--memory-budget", type=_size, default=0, metavar="SIZE",
                     help="budget: the memory running programs are charged, e.g. 512MiB")
    run.add_argument("--watch", action="store_true",
                     help="reload when a manifest or program file of the realm changes")
    run.add_argument("--switch-root", action="store_true",
                     help="accept a state directory made with another --root (its tree is matched to this root)")
    run.add_argument("--ray", metavar="ADDRESS", default="",
                     help="run ray-runner programs on a Ray cluster: its address, or local:N to start "
                          "a local cluster of N worker nodes (docs/scale-out.md)")
    run.add_argument("--ray-place", action="append", default=[], metavar="MONIKER=NODE", type=_placement,
                     help="run this instance's python program on that Ray node (repeatable; needs --ray)")
    run.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    # the manager owns LMDB, child processes and log handlers: let the interpreter shut down
    run.set_defaults(handler=_manager_run, normal_exit=True)
    _register_manager_ctl(manager_sub)


def _register_manager_ctl(manager_sub) -> None:
    """`cm manager status` and `cm manager stop` (cli/manager_ctl.py)."""
    from . import manager_ctl

    status = manager_sub.add_parser("status", help="is a manager running here: pid, since, root, instances")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=manager_ctl.status)
    stop = manager_sub.add_parser("stop", help="stop the manager (ordered shutdown) and wait until it is gone")
    stop.add_argument("--timeout", type=float, default=manager_ctl.STOP_TIMEOUT_S, metavar="SECONDS")
    stop.add_argument("--json", action="store_true", help="print JSON")
    stop.set_defaults(handler=manager_ctl.stop)


def _count(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of programs, 1 or more, not {text!r}")
    return int(text)


def _placement(text: str) -> tuple[str, str]:
    """``echo_server=node1`` or ``/echo_server=node1`` -> ("/echo_server", "node1")."""
    moniker, sep, node = text.partition("=")
    if not sep or not moniker or not node:
        raise argparse.ArgumentTypeError(f"expected MONIKER=NODE, e.g. echo_server=node1, not {text!r}")
    try:
        return str(parse(moniker if moniker.startswith("/") else "/" + moniker)), node
    except MonikerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _size(text: str) -> int:
    import argparse

    from ..manifest.schema import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _client(args):
    return Client(args.state_dir)


def _target(client, args) -> str:
    return resolve_moniker(client, args.moniker)


# ---- manager run ---------------------------------------------------------------------------

def default_root() -> str:
    here = Path("components/realm.cml")
    if here.exists():
        return str(here.resolve())
    return str(Path(__file__).resolve().parents[2] / "components" / "realm.cml")


def _manager_run(args) -> int:
    root = args.root or default_root()
    if args.detach:
        return _detach(args, root)
    # Here, not at the top: the other commands of this module (start, stop, ...) would import
    # the daemon too; no benchmark figure times them, but `cm resolve` went 85 -> 180 ms.
    from ..manager import Manager
    from ..model.resolver import absolute_url

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..policy.budget import Budget

    roots = [Path(r).resolve() for r in args.package_root] or None
    if args.ray_place and not args.ray:
        print("cm: --ray-place needs --ray ADDRESS or --ray local:N", file=sys.stderr)
        return EXIT_ERROR
    manager = Manager(Path(args.state_dir), absolute_url(root), package_roots=roots,
                      budget=Budget(args.max_running, args.memory_budget), watch=args.watch,
                      switch_root=args.switch_root, ray=args.ray, placements=dict(args.ray_place))

    def ready():
        print(f"component manager serving at {manager.state_dir} (root {absolute_url(root)})", flush=True)
        if args.ready_fd is not None:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)

    asyncio.run(manager.run(on_ready=ready))
    return 0


def _detach(args, root: str) -> int:
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    read_end, write_end = os.pipe()
    with open(state_dir / "manager.log", "ab") as log:
        offset = log.seek(0, os.SEEK_END)
        child = subprocess.Popen(
            [sys.executable, "-m", "component_manager.cli.main", "--state-dir", str(state_dir),
             "manager", "run", "--root", root, "--ready-fd", str(write_end),
             *(f"--package-root={Path(r).resolve()}" for r in args.package_root), *_governing(args)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_end,),
            start_new_session=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        line = ready.readline()  # EOF without "ready": the manager failed to start
    if line.strip() != b"ready":
        from .manager_ctl import detach_failure

        code = child.wait()
        why = detach_failure(str(state_dir / "manager.log"), offset) or f"exit {code}"
        print(f"cm: the manager failed to start: {why} (log: {state_dir / 'manager.log'})", file=sys.stderr)
        return EXIT_ERROR
    print(f"manager running at {state_dir}, pid {child.pid}")
    return 0


def _governing(args) -> list[str]:
    """The options of `manager run` that a detached manager must get too."""
    flags = [f"--max-running={args.max_running}"] if args.max_running else []
    flags += [f"--memory-budget={args.memory_budget}"] if args.memory_budget else []
    flags += ["--switch-root"] if args.switch_root else []
    flags += [f"--ray={args.ray}"] if args.ray else []
    flags += [f"--ray-place={moniker}={node}" for moniker, node in args.ray_place]
    return flags + (["--watch"] if args.watch else [])


# ---- actions -------------------------------------------------------------------------------

def _print(args, message: str, data: dict) -> int:
    print(json.dumps(data, indent=2) if args.json else message)
    return 0


def _start(args) -> int:
    client = _client(args)
    if many.is_many(args.moniker):
        return many.run(client, args, client.lifecycle.StartMany, _started_line)
    args.moniker = args.moniker[0]
    reply = client.call(client.lifecycle.Start, manager_pb2.InstanceRequest(moniker=_target(client, args)))
    state = "already running" if reply.was_running else "started"
    return _print(args, f"{reply.instance.moniker}: {state}", summary_dict(reply.instance))


def _started_line(reply) -> tuple[str, dict]:
    state = "already running" if reply.was_running else "started"
    return f"{reply.instance.moniker}: {state}", {**summary_dict(reply.instance), "was_running": reply.was_running}


def _stopped_line(reply) -> tuple[str, dict]:
    data = {**summary_dict(reply.instance), "disposition": reply.stop.disposition if reply.was_running else None}
    if not reply.was_running:
        return f"{reply.instance.moniker}: was not running", data
    return f"{reply.instance.moniker}: stopped ({reply.stop.disposition}, ran {reply.stop.run_time_s:.2f}s)", data


def _stop(args) -> int:
    client = _client(args)
    if many.is_many(args.moniker):
        return many.run(client, args, client.lifecycle.StopMany, _stopped_line)
    args.moniker = args.moniker[0]
    moniker = _target(client, args)
    before = _running_under(client, moniker)
    reply = client.call(client.lifecycle.Stop, manager_pb2.InstanceRequest(moniker=moniker))
    stopped = sorted(before - _running_under(client, moniker), key=lambda m: (m.count("/"), m))
    data = {**summary_dict(reply.instance), "stopped": stopped}
    if not reply.was_running and not stopped:
        return _print(args, f"{reply.instance.moniker}: was not running", data)
    own = f" ({reply.stop.disposition}, ran {reply.stop.run_time_s:.2f}s)" if reply.was_running else ""
    others = [m for m in stopped if m != reply.instance.moniker]
    what = f"; with it {len(others)} more: {', '.join(others)}" if others else ""
    return _print(args, f"{reply.instance.moniker}: stopped{own}{what}",
                  {**data, "disposition": reply.stop.disposition if reply.was_running else None})


def _running_under(client, moniker: str) -> set[str]:
    """The monikers of the running instances at or under ``moniker``."""
    rows = client.call(client.query.ListInstances, manager_pb2.ListInstancesRequest()).instances
    prefix = moniker.rstrip("/") + "/"
    return {r.moniker for r in rows
            if r.execution_state == "running" and (r.moniker == moniker or r.moniker.startswith(prefix))}


def _reset(args) -> int:
    client = _client(args)
    reply = client.call(client.lifecycle.Reset, manager_pb2.InstanceRequest(moniker=_target(client, args)))
    text = "restart state cleared" if reply.was_reset else "had no restart state"
    return _print(args, f"{reply.instance.moniker}: {text}",
                  {**summary_dict(reply.instance), "was_reset": reply.was_reset})


def _destroy(args) -> int:
    client = _client(args)
    reply = client.call(client.lifecycle.Destroy, manager_pb2.InstanceRequest(moniker=_target(client, args)))
    return _print(args, f"{reply.moniker}: destroyed", {"moniker": reply.moniker, "instance_id": reply.instance_id})


def _resolve(args) -> int:
    client = _client(args)
    reply = client.call(client.lifecycle.Resolve, manager_pb2.InstanceRequest(moniker=_target(client, args)))
    return _print(args, f"{reply.moniker}: {reply.state}", summary_dict(reply))


def _create(args) -> int:
    moniker = parse(args.moniker)
    leaf = moniker.leaf
    if leaf is None or leaf.collection is None:
        raise MonikerError(args.moniker, "a dynamic child is named PARENT/COLLECTION:NAME")
    url = args.url
    if "://" not in url and Path(url).exists():
        url = str(Path(url).resolve())  # a path the user can see; otherwise relative to the parent
    client = _client(args)
    request = manager_pb2.CreateChildRequest(parent=str(moniker.parent), collection=leaf.collection,
                                       name=leaf.name, url=url, start=args.start_child)
    if args.start_child:
        return _run(args, client, request, str(moniker))
    reply = client.call(client.realm.CreateChild, request)
    return _print(args, f"{reply.moniker}: created (instance id {reply.instance_id})", summary_dict(reply))


def _run(args, client, request, moniker: str) -> int:
    """`cm run`: create, start, and check it is still up ``--settle`` seconds later
    (cli/run_check.py); a failure leaves no child behind."""
    from . import run_check

    try:
        reply = client.call(client.realm.CreateChild, request)
    except RemoteError as e:
        if e.code.name in ("ALREADY_EXISTS", "NOT_FOUND", "INVALID_ARGUMENT"):
            raise  # nothing was created
        return run_check.report_failure(client, moniker, str(e), args.keep, args.json)
    stop = run_check.early_stop(client, reply.moniker, reply.instance_id, args.settle)
    if stop is not None and stop["failed"]:
        why = f"{reply.moniker} ended at once ({run_check.stop_summary(stop)})"
        return run_check.report_failure(client, reply.moniker, why, args.keep, args.json)
    verb = "created and started" if stop is None else "created, started, and exited at once (exit code 0)"
    return _print(args, f"{reply.moniker}: {verb} (instance id {reply.instance_id})", summary_dict(reply))
