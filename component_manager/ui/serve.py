"""Run the web page: a fresh token, a socket on the loopback (or a Unix socket), uvicorn.

    url = serve(state_dir, port=0)        # prints http://127.0.0.1:PORT/?token=..., serves until Ctrl-C

The socket is bound before the URL is printed, so a script (or a test) that reads the first
line of output can connect at once. Only loopback addresses are accepted: the page drives
the manager, and other users of the host must not reach it (the token guards the rest).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import sys

__all__ = ["check_loopback", "serve"]


def check_loopback(host: str) -> None:
    """Raises CmError unless ``host`` is a loopback address (127.0.0.0/8, ::1, localhost)."""
    from ..errors import CmError

    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise CmError(f"cm ui listens on loopback addresses only (127.0.0.1, ::1), not {host!r}; "
                  "to reach it from elsewhere, tunnel (ssh -L)")


def _bind(host: str, port: int, unix: str | None) -> tuple[socket.socket, str]:
    from ..errors import CmError

    try:
        if unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o077)  # owner-only, as the manager's own socket
            try:
                sock.bind(unix)
            finally:
                os.umask(old)
            return sock, "http://localhost"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise CmError(f"cm ui cannot listen on {unix or f'{host}:{port}'}: {e.strerror}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"http://{shown}:{bound}"


def serve(state_dir: str, host: str = "127.0.0.1", port: int = 0, unix: str | None = None,
          token: str | None = None, as_json: bool = False) -> int:
    """Serve until interrupted; the exit code. Raises CmError for a host that is not loopback
    or a port that cannot be had."""
    import uvicorn

    from .app import make_app
    from .backend import Backend

    check_loopback(host)
    token = token or secrets.token_urlsafe(24)
    sock, base = _bind(host, port, unix)
    sock.listen(128)
    app = make_app(Backend(state_dir), token)
    if as_json:
        import json

        print(json.dumps({"url": f"{base}/?token={token}", "token": token, "unix_socket": unix}), flush=True)
    else:
        print(f"cm ui: {base}/?token={token}", flush=True)
    where = f"over the Unix socket {unix} (curl --unix-socket {unix} URL), " if unix else ""
    print(f"  {where}driving the manager at {os.path.realpath(state_dir)}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on",
                            access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix)
    return 0
