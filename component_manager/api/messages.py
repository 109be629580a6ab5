"""Wire messages as plain dicts, for clients (``cm --json``, the test harness) and for the
query socket, which sends them ready made (``query_socket.py``): one place that knows which
proto fields are optional, so every client shows the same shapes."""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as _text  # what json.dumps does to a str

__all__ = ["config_dict", "event_dict", "limits_dict", "restart_dict", "route_dict", "show_dict", "snapshot_dict",
           "stop_dict", "summary_dict", "summary_json", "summary_row"]


def summary_row(f: dict) -> dict:
    """InstanceSummary fields as a dict (a field at its default may be left out, as
    ``api/control.summary_fields`` leaves it) as the stable row of ``cm list --json``. The
    one place that shapes a row: the manager's query socket sends these (``summary_json``),
    a gRPC client makes them with ``summary_dict``."""
    status = f.get("status", "")
    return {"moniker": f.get("moniker", ""), "url": f.get("url", ""), "instance_id": f.get("instance_id", ""),
            "state": f.get("state", ""), "execution_state": f.get("execution_state", ""),
            "incarnation": f.get("incarnation", 0), "pid": f.get("pid") or None,
            "last_stop_reason": f.get("last_stop_reason") or None,
            "last_stop_disposition": f.get("last_stop_disposition") or None, "status": status,
            "status_detail": f.get("status_detail") or status, "node": f.get("node") or None}


# summary_row's keys, in order, each followed by its value as JSON
_ROW_JSON = "{" + ", ".join(f'"{key}": %s' for key in summary_row({})) + "}"


def summary_json(f: dict) -> str:
    """``json.dumps(summary_row(f))``, three times faster: the query socket sends 100,000 of
    them for one `cm list --json` (tests/unit/api/test_messages.py holds the two equal)."""
    status, pid, node = f.get("status", ""), f.get("pid"), f.get("node")
    reason, disposition = f.get("last_stop_reason"), f.get("last_stop_disposition")
    return _ROW_JSON % (
        _text(f.get("moniker", "")), _text(f.get("url", "")), _text(f.get("instance_id", "")),
        _text(f.get("state", "")), _text(f.get("execution_state", "")), f.get("incarnation", 0),
        pid if pid else "null", _text(reason) if reason else "null", _text(disposition) if disposition else "null",
        _text(status), _text(f.get("status_detail") or status), _text(node) if node else "null")


def summary_dict(s) -> dict:
    """An InstanceSummary message as the stable shape of ``cm list --json`` (one row)."""
    return summary_row({"moniker": s.moniker, "url": s.url, "instance_id": s.instance_id, "state": s.state,
                        "execution_state": s.execution_state, "incarnation": s.incarnation, "pid": s.pid,
                        "last_stop_reason": s.last_stop_reason, "last_stop_disposition": s.last_stop_disposition,
                        "status": s.status, "status_detail": s.status_detail, "node": s.node})


def show_dict(d) -> dict:
    """An InstanceDetails message as the stable shape of ``cm show --json``."""
    last_stop = stop_dict(d.last_stop) if d.has_last_stop else None
    return {
        **summary_dict(d.summary),
        "start_reason": d.start_reason or None,
        "started_at": d.started_at or None,
        "last_stop": last_stop,
        "uses": [{"kind": u.kind, "name": u.name, "source": u.source, "route": u.route_status} for u in d.uses],
        "exposes": list(d.exposes),
        "storage": [{"name": x.name, "path": x.path, "size_bytes": x.size_bytes} for x in d.storage],
        "config": config_dict(d.config),
        "children": list(d.children),
        "collections": [{"name": c.name, "durability": c.durability, "children": list(c.children)}
                        for c in d.collections],
        "log_path": d.log_path,
        "fingerprint": d.fingerprint,
        "uid": d.uid if d.HasField("uid") else None,
        "priority": d.priority,
        "limits": limits_dict(d.limits) if d.HasField("limits") else None,
        "usage": ({"memory_bytes": d.usage.memory_bytes, "cpu_s": d.usage.cpu_s}
                  if d.HasField("usage") else None),
        "restart": restart_dict(d.restart) if d.has_restart else None,
        "snapshot": snapshot_dict(d.snapshot) if d.HasField("snapshot") else None,
    }


def snapshot_dict(s) -> dict:
    """A StorageSnapshot message: the ``snapshot`` of ``cm show --json``."""
    return {"taken_at": s.taken_at, "size_bytes": s.size_bytes, "sha256": s.sha256, "node": s.node}


def limits_dict(limits) -> dict:
    """Declared limits (0: none) and how they are enforced while it runs."""
    return {"memory_bytes": limits.memory_bytes, "cpu": limits.cpu, "pids": limits.pids,
            "open_files": limits.open_files, "enforced_by": limits.enforced_by or None}


def restart_dict(r) -> dict:
    """A RestartInfo message as the ``restart`` shape of ``cm show --json``."""
    return {"policy": r.policy, "attempt": r.attempt, "next_at": r.next_at or None,
            "last": r.last or None, "gave_up": r.gave_up, "restarts": r.restarts}


def config_dict(values) -> dict:
    """ConfigValue messages as {key: value}; each value travels as JSON."""
    if not values:
        return {}
    import json  # here, not at the top: most clients (cm list, cm logs) never need it

    return {c.key: json.loads(c.value_json) for c in values}


def stop_dict(stop) -> dict:
    """A StopRecord message as the stable ``last_stop`` shape of ``cm show --json``."""
    return {"reason": stop.reason, "disposition": stop.disposition,
            "exit_code": stop.exit_code if stop.HasField("exit_code") else None,
            "signal": stop.signal if stop.HasField("signal") else None,
            "run_time_s": stop.run_time_s, "stopped_at": stop.stopped_at, "detail": stop.detail,
            "failed": stop.failed, "hook_failures": list(stop.hook_failures)}


def event_dict(event) -> dict:
    """An Event message; ``stop`` is None unless the event carries a stop record."""
    return {"seq": event.seq, "timestamp": event.timestamp, "type": event.type,
            "moniker": event.moniker, "instance_id": event.instance_id,
            "reason": event.reason or None, "detail": event.detail or None,
            "stop": stop_dict(event.stop) if event.HasField("stop") else None}


def route_dict(r) -> dict:
    """A RouteReport message as one of the ``routes`` of ``cm route --json``."""
    return {"kind": r.kind, "capability": r.capability, "direction": r.direction, "status": r.status,
            "error": r.error or None, "source_moniker": r.source_moniker or None,
            "source_node": r.source_node or None,
            "hops": [{"moniker": h.moniker, "action": h.action, "name": h.name, "detail": h.detail}
                     for h in r.hops]}
