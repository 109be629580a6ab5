"""Human output for `cm`: colour, tables, and the one-line forms of routes and events.

Pure functions on plain dicts (the same dicts `--json` prints), so they are unit-tested
without a manager. Colour only when stdout is a TTY, NO_COLOR is unset and not ``--json``:

    paint("running", "green", enabled=True)   # "\\x1b[32mrunning\\x1b[0m"
    state_colour({"status": "failed"})   # "red"
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["colour_enabled", "format_event", "format_route", "format_size", "format_snapshot", "log_tail",
           "paint", "parse_since", "state_colour", "state_label", "status_tone", "table"]

_CODES = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
_TONE_COLOURS = {"running": "green", "waiting": "yellow", "failed": "red"}


def colour_enabled(args=None, stream=None) -> bool:
    """True when ``stream`` (stdout) is a terminal, NO_COLOR is unset, and not ``--json``."""
    if args is not None and getattr(args, "json", False):
        return False
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, colour: str | None, enabled: bool) -> str:
    if not enabled or not colour:
        return text
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"


def status_tone(status: str) -> str:
    """The family of a status the manager computed, for colouring it (terminal, graph, web
    page alike): running; waiting (paused, backing off ...); failed (failed, failed (gave up
    ...)); or quiet (stopped, unresolved, shutdown, destroyed, and anything unknown)."""
    if status == "running":
        return "running"
    if status.startswith(("paused", "backing off")):
        return "waiting"
    return "failed" if status.startswith("failed") else "quiet"


def state_colour(row: dict) -> str | None:
    """running green, paused or backing off yellow, failed red, anything else dim."""
    return _TONE_COLOURS.get(status_tone(row.get("status", "")), "dim")


def state_label(row: dict) -> str:
    """The status the manager computed (running, paused, failed, stopped, or the state of an
    instance that never got as far as stopped: unresolved, shutdown, destroyed)."""
    return row.get("status_detail") or row.get("status") or row.get("execution_state", "")


def table(headers: list[str], rows: list[list[str]], colours: list[list[str | None]] | None = None,
          enabled: bool = False) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded. ``colours``
    (per cell) paint after padding, so escapes do not break the alignment."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(_cell(h, widths[i], i == len(headers) - 1) for i, h in enumerate(headers)).rstrip()]
    for n, row in enumerate(rows):
        cells = [_cell(c, widths[i], i == len(row) - 1) for i, c in enumerate(row)]
        if colours:
            cells = [paint(c, colours[n][i], enabled) for i, c in enumerate(cells)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cell(text: str, width: int, last: bool) -> str:
    return text if last else f"{text:<{width}}"


def format_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def format_snapshot(snapshot: dict, now: float | None = None) -> str:
    """``from node2, 3 min old, 1.2 MiB``: where a storage snapshot came from and how old it is
    (what a start elsewhere would get back)."""
    age = max(0.0, (time.time() if now is None else now) - snapshot["taken_at"])
    return f"from {snapshot['node']}, {format_age(age)} old, {format_size(snapshot['size_bytes'])}"


def format_age(seconds: float) -> str:
    """``12 s``, ``3 min``, ``5.2 h``, ``3 days``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def format_route(report: dict, enabled: bool = False) -> str:
    """A route as a readable trace: a header line, then one line per hop; a broken route
    marks its last hop and says why::

        use protocol echo.Echo: ok (from /echo_server)
          use      /echo_client  echo.Echo  protocol from parent
          ...
    """
    status = report["status"]
    colour = {"ok": "green", "unavailable": "yellow"}.get(status, "red")
    where = f" (from {report['source_moniker']})" if report.get("source_moniker") else ""
    if report.get("source_node"):
        where = where[:-1] + f" on Ray node {report['source_node']})"
    head = f"{report['direction']} {report['kind']} {report['capability']}: {paint(status, colour, enabled)}{where}"
    hops = report.get("hops", [])
    width = max((len(h["moniker"]) for h in hops), default=0)
    lines = [head]
    for i, hop in enumerate(hops):
        broken = status == "broken" and i == len(hops) - 1
        mark = paint("✗", "red", enabled) if broken else " "
        detail = f"  {hop['detail']}" if hop.get("detail") else ""
        lines.append(f" {mark} {hop['action']:<9}{hop['moniker']:<{width}}  {hop['name']}{detail}")
    if status == "broken":
        lines.append(f" {paint('✗', 'red', enabled)} broken: {report['error']}")
    return "\n".join(lines)


def format_event(event: dict, enabled: bool = False) -> str:
    """``2024-05-01 12:00:03.120  stopped    /echo_server  idle  stopped, exit 0``"""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["timestamp"]))
    stamp += f".{int(event['timestamp'] % 1 * 1000):03d}"
    parts = [stamp, f"{event['type']:<10}", event["moniker"]]
    if event.get("reason"):
        parts.append(event["reason"])
    stop = event.get("stop")
    if stop:
        outcome = stop["disposition"]
        if stop.get("exit_code") is not None:
            outcome += f", exit {stop['exit_code']}"
        elif stop.get("signal") is not None:
            outcome += f", signal {stop['signal']}"
        parts.append(paint(outcome, "red" if stop.get("failed") else None, enabled))
    if event.get("detail"):
        parts.append(f"({event['detail']})")
    return "  ".join(parts)


def log_tail(path: str, lines: int = 10, max_bytes: int = 1 << 16) -> list[str]:
    """The last ``lines`` lines of the log at ``path`` (reading at most its last ``max_bytes``);
    [] when there is none."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """A point in time as unix seconds, from ``30s``/``10m``/``2h``/``1d`` ago, an ISO time
    (``2024-05-01 12:00:00``, ``2024-05-01T12:00``), today's ``12:00[:00]``, or unix seconds.
    Raises ValueError naming the accepted forms."""
    now = time.time() if now is None else now
    text = text.strip()
    if text[-1:] in _UNITS and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * _UNITS[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(text, form))
        except ValueError:
            continue
    for form in ("%H:%M:%S", "%H:%M"):
        try:
            clock = time.strptime(text, form)
        except ValueError:
            continue
        today = time.localtime(now)
        return time.mktime((today.tm_year, today.tm_mon, today.tm_mday, clock.tm_hour, clock.tm_min,
                            clock.tm_sec, 0, 0, -1))
    raise ValueError(f"cannot read time {text!r} (use 10m, 2h, 1d, 12:00, 2024-05-01 12:00 or unix seconds)")
