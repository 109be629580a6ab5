"""`cm ui`: a local web page for a running manager (the ``component_manager.ui`` package).

    $ cm ui
    cm ui: http://127.0.0.1:38417/?token=Zk3...     # open it; Ctrl-C to stop

Listens on 127.0.0.1 (``--host`` takes another loopback address; ``--unix PATH`` a Unix
socket instead); every request needs the printed token. Needs the ``ui`` extra
(``pip install 'component-manager[ui]'``: Starlette and uvicorn).
"""

from __future__ import annotations

from ..errors import CmError

__all__ = ["register"]


def register(sub, command: str) -> None:
    p = sub.add_parser("ui", help="a local web page: live tree, graph, details, buttons, events")
    p.add_argument("--host", default="127.0.0.1", help="a loopback address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: any free one, printed)")
    p.add_argument("--unix", metavar="PATH", help="listen on this Unix socket instead of TCP")
    p.add_argument("--json", action="store_true", help='print {"url", "token"} as the first line, as JSON')
    p.set_defaults(handler=_ui)


def _ui(args) -> int:
    try:
        from ..ui.serve import serve
    except ModuleNotFoundError as e:
        if e.name not in ("starlette", "uvicorn"):
            raise
        raise CmError(f"cm ui needs {e.name}: pip install 'component-manager[ui]'") from None
    return serve(args.state_dir, host=args.host, port=args.port, unix=args.unix, as_json=args.json)
