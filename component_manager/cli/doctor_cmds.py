"""`cm doctor`: one report of everything wrong with a running manager's realm, each finding
with what to run next. Exit 0 when nothing is wrong, 1 otherwise.

    $ cm doctor
    ✗ /counter  failed: start_failed, exit code 1 (ModuleNotFoundError: No module named 'x')
        next: cm logs /counter; then cm start /counter
    ! /echo_client  route unavailable: use protocol echo.Echo (offered from void)
        next: cm route /echo_client echo.Echo
    1 problem, 1 warning in 4 instances

Checks (``check_*``, pure on plain dicts; ``_gather`` asks the manager): the python zygote is
alive; no instance failed, gave up restarting or backs off; every route of every resolved
instance leads somewhere; every package folder and manifest is still there, compiles, and is
unchanged since it was resolved; no storage area is over ``--storage-limit``. Errors count for the exit
code; warnings (an optional route that ends nowhere, a restart backing off) are shown only.
"""

from __future__ import annotations

import json
import os
from urllib.parse import unquote, urlparse

from .._generated import manager_pb2
from ..api.messages import route_dict, show_dict, summary_dict
from ..errors import CmError
from ..manifest import compile_file, load
from .client import Client
from .main import COMMANDS
from .monikers import MONIKER_HELP, resolve_moniker
from .output import colour_enabled, paint

__all__ = ["check_instance", "check_routes", "check_unresolved", "check_zygote", "register", "zygote_state"]

DEFAULT_STORAGE_LIMIT = "1GiB"
_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def register(sub, command: str) -> None:
    p = sub.add_parser("doctor", help="everything wrong, with what to run next (exit 1 if anything is)")
    p.add_argument("moniker", nargs="?", default="", help=f"only this realm (subtree); {MONIKER_HELP}")
    p.add_argument("--storage-limit", default=DEFAULT_STORAGE_LIMIT, metavar="SIZE",
                   help=f"report storage areas larger than this (default {DEFAULT_STORAGE_LIMIT})")
    p.add_argument("--json", action="store_true", help="print {ok, instances, findings} as JSON")
    p.set_defaults(handler=_doctor)


def parse_size(text: str) -> int:
    """ "64MiB" -> 67108864. Raises CmError for anything else."""
    digits = text.strip().rstrip("BbIiKkMmGg")
    unit = text.strip()[len(digits):].lower()
    try:
        return int(float(digits) * _UNITS[unit])
    except (KeyError, ValueError):
        raise CmError(f"--storage-limit: {text!r} is not a size (e.g. 500MiB, 2GiB)") from None


def finding(severity: str, moniker: str, problem: str, next_step: str) -> dict:
    return {"severity": severity, "moniker": moniker, "problem": problem, "next": next_step}


# ---- the checks: plain dicts in, findings out ------------------------------------------------

def check_instance(info: dict, storage_limit: int, manifest_fingerprint: str | None) -> list[dict]:
    """Findings about one instance (``info`` as ``cm show --json`` has it).
    ``manifest_fingerprint``: its manifest's fingerprint now, "" when the file is gone, None
    when not checked."""
    m, status, found = info["moniker"], info.get("status") or "", []
    shown = info.get("status_detail") or status  # "failed (gave up after 5 restarts)" where sent
    if status.startswith("failed"):
        found.append(finding("error", m, f"{shown}: {_stop_text(info.get('last_stop'))}", _after_failure(m, info)))
    elif status.startswith("backing off"):
        found.append(finding("warning", m, shown, f"cm logs {m}"))
    found += _package_findings(info, manifest_fingerprint)
    for area in info.get("storage", ()):
        if area["size_bytes"] > storage_limit:
            found.append(finding("error", m, f"storage '{area['name']}' holds {area['size_bytes']} bytes, "
                                 f"over {storage_limit}", f"cm storage show {m}; cm storage delete {m} (when stopped)"))
    return found


def _after_failure(moniker: str, info: dict) -> str:
    """What to run after a failure; a restart policy that gave up is cleared by `cm reset`."""
    gave_up = "gave up" in (info.get("status_detail") or info.get("status") or "") or \
        bool((info.get("restart") or {}).get("gave_up"))
    again = f"cm reset {moniker}" if gave_up and "reset" in COMMANDS else f"cm start {moniker}"
    return f"cm logs {moniker}; then {again}"


def _stop_text(stop: dict | None) -> str:
    if not stop:
        return "no stop recorded"
    how = (f"exit code {stop['exit_code']}" if stop.get("exit_code") is not None
           else f"signal {stop['signal']}" if stop.get("signal") is not None else stop["disposition"])
    return f"{stop['reason']}, {how}" + (f" ({stop['detail']})" if stop.get("detail") else "")


def _package_findings(info: dict, fingerprint: str | None) -> list[dict]:
    m = info["moniker"]
    package = info.get("package_dir") or ""
    if package and not os.path.isdir(package):
        return [finding("error", m, f"its package folder {package} is missing", f"restore it, or cm destroy {m}")]
    if fingerprint == "":
        return [finding("error", m, f"its manifest {info['url']} is missing", f"restore it, or cm destroy {m}")]
    if fingerprint and info.get("fingerprint") and fingerprint != info["fingerprint"]:
        return [finding("warning", m, f"its manifest changed since it was resolved ({info['url']})",
                        _reload_hint(m))]
    return []


def _reload_hint(moniker: str) -> str:
    return f"cm reload {moniker}" if "reload" in COMMANDS else "restart the manager to load it"


def check_unresolved(row: dict) -> list[dict]:
    """An instance not resolved yet: its manifest must still be there for it ever to start."""
    if row["url"].startswith("file:") and not os.path.exists(_url_path(row["url"])):
        return [finding("error", row["moniker"], f"its manifest {row['url']} is missing: it cannot resolve or start",
                        f"restore it, or cm destroy {row['moniker']}")]
    return []


def _url_path(url: str) -> str:
    return unquote(urlparse(url).path)


def check_routes(moniker: str, reports: list[dict]) -> list[dict]:
    """A finding per broken route (error) and per optional route that ends nowhere (warning)."""
    found = []
    for r in reports:
        what = f"{r['direction']} {r['kind']} {r['capability']}"
        if r["status"] == "broken":
            found.append(finding("error", moniker, f"route broken: {what}: {r['error']}",
                                 f"cm route {moniker} {r['capability']}"))
        elif r["status"] == "unavailable":
            found.append(finding("warning", moniker, f"route unavailable: {what} (nobody provides it)",
                                 f"cm route {moniker} {r['capability']}"))
    return found


def check_zygote(state: str, state_dir: str) -> list[dict]:
    if state != "dead":
        return []
    return [finding("error", "", "the python zygote has died: python programs are spawned one by one (slower)",
                    f"read {os.path.join(state_dir, 'zygote.log')}; then restart the manager")]


def zygote_state(state_dir: str) -> str:
    """"alive", "dead", "off" (CM_ZYGOTE=0) or "unknown" (no pid file, or not our user's),
    from /proc: the manager's pid file and its children."""
    try:
        pid = int(open(os.path.join(state_dir, "manager.pid")).read())
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    except (OSError, ValueError):
        return "unknown"
    if b"CM_ZYGOTE=0" in environ:
        return "off"
    for child in _children(pid):
        try:
            if b"component_manager.runners.zygote" in open(f"/proc/{child}/cmdline", "rb").read():
                return "alive"
        except OSError:
            continue
    return "dead"


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        text = " ".join(open(f"/proc/{pid}/task/{t}/children").read() for t in tasks)
    except OSError:
        return []
    return [int(c) for c in text.split()]


# ---- asking the manager ----------------------------------------------------------------------

def _gather(args, storage_limit: int) -> tuple[int, list[dict]]:
    """(instances looked at, findings)."""
    client = Client(args.state_dir)
    prefix = resolve_moniker(client, args.moniker) if args.moniker else ""
    rows = [summary_dict(s) for s in client.call(client.query.ListInstances,
                                                 manager_pb2.ListInstancesRequest(prefix=prefix)).instances]
    found = check_zygote(zygote_state(client.state_dir), client.state_dir)
    fingerprints: dict[str, str | None] = {}
    for row in rows:
        if row["state"] == "unresolved":
            found += check_unresolved(row)
        elif row["state"] in ("resolved", "started"):
            found += _check_resolved(client, row, storage_limit, fingerprints)
    return len(rows), found


def _check_resolved(client, row: dict, storage_limit: int, fingerprints: dict) -> list[dict]:
    request = manager_pb2.InstanceRequest(moniker=row["moniker"])
    details = client.call(client.query.GetInstance, request)
    info = {**show_dict(details), "package_dir": details.package_dir}
    now = _fingerprint(info["url"], fingerprints)
    found = []
    if isinstance(now, Exception):
        first = str(now).splitlines()[0] if str(now) else type(now).__name__
        found.append(finding("error", row["moniker"], f"its manifest no longer compiles: {first}",
                             f"cm validate {_url_path(info['url'])}"))
        now = None
    found += check_instance(info, storage_limit, now)
    reply = client.call(client.query.Route, manager_pb2.RouteRequest(moniker=row["moniker"]))
    return found + check_routes(row["moniker"], [route_dict(r) for r in reply.routes])


def _fingerprint(url: str, cache: dict) -> str | Exception | None:
    """The fingerprint of the manifest at ``url`` now ("" if it is gone, the error if it does
    not compile, None for a URL that is not a file), compiled once per URL."""
    if url not in cache:
        path = _url_path(url)
        if not url.startswith("file:"):
            cache[url] = None
        elif not os.path.exists(path):
            cache[url] = ""
        else:
            try:
                cache[url] = (load(path) if path.endswith(".cm") else compile_file(path)).fingerprint
            except (CmError, OSError) as e:  # unreadable or invalid now
                cache[url] = e
    return cache[url]


def _doctor(args) -> int:
    count, found = _gather(args, parse_size(args.storage_limit))
    errors = sum(f["severity"] == "error" for f in found)
    if args.json:
        print(json.dumps({"ok": errors == 0, "instances": count, "findings": found}, indent=2))
    else:
        print(format_report(found, count, colour_enabled(args)))
    return 1 if errors else 0


def format_report(found: list[dict], count: int, colour: bool = False) -> str:
    lines = []
    for f in found:
        mark = paint("✗", "red", colour) if f["severity"] == "error" else paint("!", "yellow", colour)
        where = f"{f['moniker']}  " if f["moniker"] else ""
        lines += [f"{mark} {where}{f['problem']}", f"    next: {f['next']}"]
    errors = sum(f["severity"] == "error" for f in found)
    warnings = len(found) - errors
    if not found:
        lines.append(f"{paint('✓', 'green', colour)} nothing wrong in {count} instances")
    else:
        lines.append(f"{_plural(errors, 'problem')}, {_plural(warnings, 'warning')} in {count} instances")
    return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

