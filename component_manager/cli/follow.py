"""`cm logs MONIKER --follow`: print a program's log, then what is appended to it, until
Ctrl-C, the instance is destroyed, or the manager goes away.

The file is read where the manager writes it (cm runs on the manager's host). Growth is
polled (a log has no other signal); the end is signalled by a ``destroyed`` event (or the
event stream closing), watched in a thread.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import grpc

from .._generated import manager_pb2
from .client import Client

__all__ = ["follow_log"]

POLL_S = 0.1


def follow_log(state_dir: str, moniker: str, path: Path, out=None) -> int:
    out = out or sys.stdout.buffer
    done = threading.Event()
    stream = _watch_destroyed(state_dir, moniker, done)
    try:
        offset = 0
        while True:
            offset = _copy_new(path, offset, out)
            if done.wait(POLL_S):
                _copy_new(path, offset, out)  # what was written before the end
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stream.cancel()


def _copy_new(path: Path, offset: int, out) -> int:
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) < offset:
                offset = 0  # truncated or replaced: start over
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    if data:
        out.write(data)
        out.flush()
    return offset + len(data)


def _watch_destroyed(state_dir: str, moniker: str, done: threading.Event):
    """Sets ``done`` on a ``destroyed`` event for ``moniker`` or when the stream ends."""
    client = Client(state_dir)
    stream = client.events.Subscribe(manager_pb2.SubscribeRequest(
        moniker_prefix=moniker, types=["destroyed"], follow=True))

    def pump():
        try:
            for event in stream:
                if event.moniker == moniker:
                    break
        except grpc.RpcError:
            pass
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    stream.initial_metadata()  # subscribed: a destroy from now on is seen
    return stream
