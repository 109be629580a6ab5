"""`cm run`: a start is only a success if the program is still up a moment later.

As supervisord's ``startsecs``: after the start returns, ``cm run`` watches the new instance
for ``--settle`` seconds (default 1). A program that could not start, or ended with a
failure within that window, is reported with the last lines of its log and exit 1, and the
child `cm run` created is destroyed (``--keep`` keeps it for `cm show` and `cm logs`), so
``cm run`` either leaves a running child or nothing. One that exited 0 at once (a one-shot
job) is reported as such, exit 0.
"""

from __future__ import annotations

import json
import sys

import grpc

from .._generated import manager_pb2
from ..api.messages import stop_dict
from .client import RemoteError
from .exitcodes import EXIT_ERROR
from .output import log_tail

__all__ = ["SETTLE_S", "early_stop", "report_failure", "stop_summary"]

SETTLE_S = 1.0
TAIL_LINES = 10


def early_stop(client, moniker: str, instance_id: str, settle: float) -> dict | None:
    """The stop record (a dict) of ``instance_id`` if its program ended within ``settle``
    seconds of now (or already had), else None. Stored history is replayed first, so an end
    that came before this call is seen too."""
    if settle <= 0:
        return None
    request = manager_pb2.SubscribeRequest(moniker_prefix=moniker, types=["stopped"], history=True, follow=True)
    stream = client.events.Subscribe(request, timeout=settle)
    try:
        for event in stream:
            if event.moniker == moniker and event.instance_id == instance_id:
                return stop_dict(event.stop)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise RemoteError(e) from None
    finally:
        stream.cancel()
    return None


def report_failure(client, moniker: str, why: str, keep: bool, as_json: bool = False) -> int:
    """Print why, the log's last lines, and destroy the child unless ``keep``; EXIT_ERROR.
    ``as_json``: the same on stdout too, as cm's JSON error with ``log_tail`` and ``kept``."""
    print(f"cm: {why}", file=sys.stderr)
    try:
        info = client.call(client.query.GetInstance, manager_pb2.InstanceRequest(moniker=moniker))
    except RemoteError:
        info = None  # it was not created: nothing to show or remove
    tail = log_tail(info.log_path, TAIL_LINES) if info is not None else []
    if as_json:
        print(json.dumps({"error": why, "type": "StartError", "exit_code": EXIT_ERROR, "moniker": moniker,
                          "log_tail": tail, "kept": keep and info is not None}))
    if info is None:
        return EXIT_ERROR
    if tail:
        print(f"cm: the last lines of its log ({info.log_path}):", file=sys.stderr)
        print("\n".join("    " + line for line in tail), file=sys.stderr)
    if keep:
        print(f"cm: {moniker} kept (--keep)", file=sys.stderr)
    else:
        client.call(client.lifecycle.Destroy, manager_pb2.InstanceRequest(moniker=moniker))
        print(f"cm: {moniker} destroyed (--keep keeps a failed child)", file=sys.stderr)
    return EXIT_ERROR


def stop_summary(stop: dict) -> str:
    """``exit code 1`` / ``signal 9`` / the reason."""
    if stop.get("exit_code") is not None:
        return f"exit code {stop['exit_code']}"
    if stop.get("signal") is not None:
        return f"signal {stop['signal']}"
    return stop["reason"]

