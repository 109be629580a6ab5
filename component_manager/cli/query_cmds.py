"""`cm list`, `cm tree`, `cm show`, `cm logs`: read-only views of a running manager.

    cm list                 # every instance: moniker, status, pid, id, url
    cm tree                 # the topology, each name with its status
    cm show echo_server     # everything about one instance
    cm logs counter -f      # a program's output, then what it appends

Each takes ``--json``; the JSON shapes of ``show`` and ``list`` are stable (docs/cli.md,
"JSON shapes"; built in api/messages.py). These are the commands people run in a loop, so each
is one request, to the manager's query socket, and none imports grpc, protobuf or the
daemon's side (``reads.py``; tests/integration/test_cli.py checks).
"""

from __future__ import annotations

import json
import re
import sys
import time

from ..errors import UsageError
from . import reads
from .monikers import MONIKER_HELP
from .output import colour_enabled, format_snapshot, paint, parse_since, state_colour, state_label, table

__all__ = ["format_list", "format_show", "format_tree", "register"]


def register(sub, command: str) -> None:
    """Add the parser of ``command``, one of list, tree, show, logs."""
    helptext, handler = {
        "list": ("every instance: moniker, state, url, instance id", _list),
        "tree": ("the topology as a tree", _tree),
        "show": ("everything about one instance", _show),
        "logs": ("print a program's output", _logs),
    }[command]
    parser = sub.add_parser(command, help=helptext)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handler)
    if command in ("show", "logs"):
        parser.add_argument("moniker", help=MONIKER_HELP)
    if command == "logs":
        parser.add_argument("-f", "--follow", action="store_true",
                            help="keep printing as the log grows (until Ctrl-C or destroy)")
        parser.add_argument("-n", "--lines", type=int, default=None, metavar="N", help="only the last N lines")
        parser.add_argument("--since", metavar="TIME",
                            help="from the run that was running at TIME (10m, 2h, 12:00, 2024-05-01 12:00)")


def _print_json(data) -> None:
    print(json.dumps(data, indent=2))


def _print_json_lines(lines: bytes) -> None:
    """The rows of ``reads.list_lines`` as a JSON array, one row per line, as they came (a
    row by itself is what json.dumps gives; json.dumps with ``indent`` of the whole list would
    run its pure-Python encoder: 1.3 s for 100,000 instances)."""
    sys.stdout.flush()
    out = sys.stdout.buffer
    if not lines:
        out.write(b"[]\n")
        return
    for piece in (b"[\n  ", lines.replace(b"\n", b",\n  "), b"\n]\n"):  # 35 MB for 100,000: not joined
        out.write(piece)


# ---- list and tree -------------------------------------------------------------------------

def _list(args) -> int:
    return _print_instances(args, format_list)


def _tree(args) -> int:
    return _print_instances(args, format_tree)


def _print_instances(args, formatter) -> int:
    lines = reads.list_lines(args.state_dir)
    if args.json:
        _print_json_lines(lines)
    else:
        print(formatter(reads.rows_of(lines), colour_enabled(args)))
    return 0


def format_list(rows: list[dict], colour: bool = False) -> str:
    """MONIKER STATUS PID ID URL; STATUS is running/stopped/failed/... in its colour. A NODE
    column (before URL) when some program runs on a Ray node."""
    if any(r.get("node") for r in rows):
        cells = [[r["moniker"], state_label(r), str(r["pid"] or "-"), r["instance_id"][:12], r.get("node") or "-",
                  r["url"]] for r in rows]
        colours = [[None, state_colour(r), None, "dim", None, None] for r in rows]
        return table(["MONIKER", "STATUS", "PID", "ID", "NODE", "URL"], cells, colours, colour)
    cells = [[r["moniker"], state_label(r), str(r["pid"] or "-"), r["instance_id"][:12], r["url"]] for r in rows]
    colours = [[None, state_colour(r), None, "dim", None] for r in rows]
    return table(["MONIKER", "STATUS", "PID", "ID", "URL"], cells, colours, colour)


def format_tree(rows: list[dict], colour: bool = False) -> str:
    """The topology with box-drawing branches, each name followed by its status::

        /  running
        ├── echo_server  stopped
        └── workers:c1  failed (crashed)
    """
    children: dict[str, list[dict]] = {}
    for r in rows:
        if r["moniker"] != "/":
            children.setdefault(_parent(r["moniker"]), []).append(r)
    lines: list[str] = []

    def walk(row: dict, prefix: str, branch: str, name: str) -> None:
        label = state_label(row)
        if label == "failed" and row.get("last_stop_reason"):
            label += f" ({row['last_stop_reason']})"
        lines.append(f"{prefix}{branch}{name}  {paint(label, state_colour(row), colour)}")
        kids = children.get(row["moniker"], [])
        inner = prefix + ("" if not branch else ("    " if branch.startswith("└") else "│   "))
        for i, kid in enumerate(kids):
            walk(kid, inner, "└── " if i == len(kids) - 1 else "├── ", kid["moniker"].rsplit("/", 1)[1])

    known = {r["moniker"] for r in rows}
    for root in (r for r in rows if r["moniker"] == "/" or _parent(r["moniker"]) not in known):
        walk(root, "", "", root["moniker"])
    return "\n".join(lines)


def _parent(moniker: str) -> str:
    return moniker.rsplit("/", 1)[0] or "/"


# ---- show and logs -------------------------------------------------------------------------

def _show(args) -> int:
    info = reads.show(args.state_dir, args.moniker)
    if args.json:
        _print_json(info)
    else:
        print(format_show(info))
    return 0


def _shown_status(info: dict) -> str:
    """The status beside the state: running, paused, stopped or failed."""
    status = info.get("status_detail") or info.get("status")
    return status if status and status != info["state"] else info["execution_state"]


def format_show(info: dict) -> str:
    lines = [f"{'Moniker':<16}{info['moniker']}", f"{'URL':<16}{info['url']}",
             f"{'Instance ID':<16}{info['instance_id']}",
             f"{'State':<16}{info['state']} ({_shown_status(info)})"]
    if info["pid"]:
        uptime = time.time() - (info["started_at"] or time.time())
        lines.append(f"{'PID':<16}{info['pid']} (up {uptime:.1f}s)")
    if info.get("node"):
        lines.append(f"{'Node':<16}{info['node']} (Ray)")
    if info.get("uid") is not None:
        lines.append(f"{'Uid':<16}{info['uid']} (its own)")
    if info["start_reason"]:
        lines.append(f"{'Start reason':<16}{info['start_reason']}")
    if info["last_stop"]:
        ls = info["last_stop"]
        code = f"exit code {ls['exit_code']}" if ls["exit_code"] is not None else (
            f"signal {ls['signal']}" if ls["signal"] is not None else "")
        lines.append(f"{'Last stop':<16}{ls['reason']}, {ls['disposition']}"
                     f"{', ' + code if code else ''}, ran {ls['run_time_s']:.2f}s"
                     f"{' (' + ls['detail'] + ')' if ls['detail'] else ''}")
    for failure in (info["last_stop"] or {}).get("hook_failures", ()):
        lines.append(f"{'Hook failed':<16}{failure}")
    restart = info.get("restart")
    if restart and (restart["policy"] != "never" or restart["attempt"]):
        lines.append(f"{'Restart':<16}{_restart_line(restart)}")
    lines += _limit_lines(info)
    for use in info["uses"]:
        lines.append(f"{'Uses':<16}{use['kind']} {use['name']} from {use['source'] or '?'} [{use['route']}]")
    for expose in info["exposes"]:
        lines.append(f"{'Exposes':<16}{expose}")
    for area in info["storage"]:
        lines.append(f"{'Storage':<16}{area['name']}: {area['path']} ({area['size_bytes']} bytes)")
    if info.get("snapshot"):
        lines.append(f"{'Snapshot':<16}{format_snapshot(info['snapshot'])}")
    if info["config"]:
        lines += [f"{'Config':<16}{key} = {json.dumps(value)}" for key, value in info["config"].items()]
    for child in info["children"]:
        lines.append(f"{'Child':<16}{child}")
    for coll in info["collections"]:
        lines.append(f"{'Collection':<16}{coll['name']} ({coll['durability']}, {len(coll['children'])} children)")
    return "\n".join(lines)


def _restart_line(r: dict) -> str:
    """``on_failure, attempt 2, 2 restarts in the window, last: crashed SIGSEGV``."""
    parts = [r["policy"], f"attempt {r['attempt']}", f"{r['restarts']} restarts in the window"]
    if r["gave_up"]:
        parts.append("gave up")
    elif r["next_at"]:
        parts.append(f"next in {max(0.0, r['next_at'] - time.time()):.1f}s")
    if r["last"]:
        parts.append(f"last: {r['last']}")
    return ", ".join(parts)


def _limit_lines(info: dict) -> list[str]:
    from .output import format_size

    lines = []
    limits = info.get("limits")
    if limits:
        parts = [f"memory {format_size(limits['memory_bytes'])}" if limits["memory_bytes"] else "",
                 f"cpu {limits['cpu']:g}" if limits["cpu"] else "",
                 f"pids {limits['pids']}" if limits["pids"] else "",
                 f"open_files {limits['open_files']}" if limits["open_files"] else ""]
        how = f" (enforced by {limits['enforced_by']})" if limits["enforced_by"] else ""
        lines.append(f"{'Limits':<16}{', '.join(p for p in parts if p)}{how}")
    if info.get("usage"):
        used = info["usage"]
        lines.append(f"{'Usage':<16}memory {format_size(used['memory_bytes'])}, cpu time {used['cpu_s']:.2f}s")
    if info.get("priority"):
        lines.append(f"{'Priority':<16}{info['priority']}")
    return lines


def _logs(args) -> int:
    """The log from an offset (``--since``: the marker of the run running then; ``-n``: the
    last N lines), then, with ``--follow``, what is appended."""
    if args.json and args.follow:
        raise UsageError("--json cannot be combined with --follow (a log is raw output)")
    info = reads.show(args.state_dir, args.moniker)
    moniker, log_path = info["moniker"], info["log_path"]
    if not (args.since or args.lines is not None or args.json):
        if args.follow:
            return _follow(args.state_dir, moniker, log_path)
        _copy_log(log_path)
        return 0
    text = _read_log(log_path)
    start = since_offset(text, _since(args.since)) if args.since else 0
    if args.lines is not None:
        start = max(start, lines_offset(text, args.lines))
    if args.json:
        lines = text[start:].decode(errors="replace").splitlines()
        _print_json({"moniker": moniker, "log_path": log_path, "lines": lines})
    elif args.follow:
        return _follow(args.state_dir, moniker, log_path, offset=start)
    else:
        sys.stdout.buffer.write(text[start:])
    return 0


def _follow(state_dir: str, moniker: str, log_path: str, offset: int = 0) -> int:
    from pathlib import Path

    from .follow import follow_log  # here: it watches the manager's events over gRPC

    return follow_log(state_dir, moniker, Path(log_path), offset=offset)


def _read_log(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _copy_log(path: str) -> None:
    """The whole log to stdout, 1 MiB at a time (shutil's copyfileobj: +10 ms of imports)."""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                sys.stdout.buffer.write(chunk)
    except FileNotFoundError:
        pass


def _since(text: str) -> float:
    try:
        return parse_since(text)
    except ValueError as e:
        raise UsageError(f"--since: {e}") from None


# The line the manager writes at each start (actions/start.py): "-- started 2024-05-01 12:00:03 (reason) --"
_MARKER = re.compile(rb"^-- started (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \(.*\) --$", re.MULTILINE)


def since_offset(text: bytes, since: float) -> int:
    """Where the run that was running at ``since`` (the last started at or before it; else
    the first after it) begins in ``text``; len(text) when no run started before or after."""
    start = None
    for marker in _MARKER.finditer(text):
        at = time.mktime(time.strptime(marker.group(1).decode(), "%Y-%m-%d %H:%M:%S"))
        if at > since:
            return marker.start() if start is None else start
        start = marker.start()
    return len(text) if start is None else start


def lines_offset(text: bytes, n: int) -> int:
    """Where the last ``n`` lines of ``text`` begin."""
    end = len(text) - 1 if text.endswith(b"\n") else len(text)
    for _ in range(max(n, 0)):
        end = text.rfind(b"\n", 0, end)
        if end < 0:
            return 0
    return end + 1 if n > 0 else len(text)
