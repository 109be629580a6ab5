"""The web page's HTTP side: one HTML page, a small JSON API over ``Backend``, and the event
stream as server-sent events.

    GET  /                                  the page (HTML, CSS and script in one file)
    GET  /api/meta                          the state directory and the verbs this manager offers
    GET  /api/instances                     `cm list --json`
    GET  /api/instance?moniker=/counter     `cm show --json`, plus ``log_tail``
    GET  /api/route?moniker=M&capability=C  `cm route --json`'s ``routes``
    GET  /api/graph.svg?routes=1            the `cm graph` picture (Graphviz); .dot and .json too
    GET  /api/events                        text/event-stream: stored history, then live
    POST /api/action  {"verb": "start", "moniker": "/counter"}   start|stop|restart|pause|resume|destroy

Every request needs the token (``?token=`` or ``Authorization: Bearer``): without it, 401.
Nothing that changes state is a GET. Answers are never cached, never framed, and send no
Referer (the token is in the page's URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import secrets
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..cli.graph_dot import DotMissing, to_dot
from .backend import Backend, Refused

__all__ = ["make_app"]

MAX_BODY = 4096
KEEPALIVE_S = 15.0  # an idle event stream says something this often, so a closed tab is noticed
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


def local_host(header: str) -> bool:
    """Whether a Host header names this machine's loopback (``127.0.0.1:8080``, ``[::1]``,
    ``localhost``). A web page whose own name was rebound to 127.0.0.1 sends its own name."""
    host = header.strip()
    if host.startswith("["):  # [::1]:8080
        host = host[1:host.find("]")]
    elif host.count(":") == 1:  # 127.0.0.1:8080, localhost:8080
        host = host.split(":")[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_app(backend: Backend, token: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        backend.open()
        try:
            yield
        finally:
            await backend.close()

    routes = [Route("/", _page), Route("/api/meta", _meta), Route("/api/instances", _instances),
              Route("/api/instance", _instance), Route("/api/route", _route),
              Route("/api/graph.{fmt:str}", _graph), Route("/api/events", _events),
              Route("/api/action", _action, methods=["POST"])]
    middleware = [Middleware(_TokenMiddleware, token=token)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.backend = backend
    return app


class _TokenMiddleware:
    """400 for a request to another host name, 401 for one without the token; the security
    headers on every answer."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._refusal(Request(scope))
        if refusal is not None:
            return await refusal(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}  # the page sets its own policy
                message["headers"] = headers + [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                                                if k.lower().encode() not in present]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, request: Request) -> Response | None:
        if not local_host(request.headers.get("host", "")):
            return PlainTextResponse("400: cm ui answers only to 127.0.0.1, ::1 or localhost\n",
                                     status_code=400, headers=SECURITY_HEADERS)
        given = request.query_params.get("token") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.token):
            return PlainTextResponse("401: this page needs the token in the URL that `cm ui` printed\n",
                                     status_code=401, headers=SECURITY_HEADERS)
        return None


def _backend(request: Request) -> Backend:
    return request.app.state.backend


def _refused(e: Refused) -> JSONResponse:
    return JSONResponse({"error": e.message}, status_code=e.status)


def _moniker(request: Request) -> str:
    moniker = request.query_params.get("moniker", "")
    if not moniker:
        raise Refused(400, "no moniker given")
    return moniker


def _answers(handler):
    """A JSON endpoint: the handler's result, or the manager's refusal with its status."""
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request))
        except Refused as e:
            return _refused(e)
    return endpoint


PAGE = resources.files(__package__).joinpath("page.html")


async def _page(request: Request) -> Response:
    """The page, its one script allowed by a nonce: markup that slipped into the page (an odd
    name in a log line) could not run a script of its own."""
    nonce = secrets.token_urlsafe(16)
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'",
                                                                 f"script-src 'nonce-{nonce}'")
    html = PAGE.read_text().replace("<script>", f'<script nonce="{nonce}">', 1)
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


@_answers
async def _meta(request: Request) -> dict:
    backend = _backend(request)
    return {"state_dir": backend.state_dir, "verbs": backend.verbs}


@_answers
async def _instances(request: Request) -> list:
    return await _backend(request).instances()


@_answers
async def _instance(request: Request) -> dict:
    return await _backend(request).show(_moniker(request))


@_answers
async def _route(request: Request) -> list:
    return await _backend(request).routes(_moniker(request), request.query_params.get("capability", ""))


async def _graph(request: Request) -> Response:
    backend, fmt = _backend(request), request.path_params["fmt"]
    routes = request.query_params.get("routes", "1") != "0"
    try:
        if fmt == "svg":
            return Response(await backend.graph_svg(routes), media_type="image/svg+xml")
        if fmt == "dot":
            return PlainTextResponse(to_dot(await backend.graph(routes)))
        if fmt == "json":
            return JSONResponse(await backend.graph(routes))
    except Refused as e:
        return _refused(e)
    except DotMissing as e:
        return JSONResponse({"error": str(e)}, status_code=501)
    except RuntimeError as e:  # dot refused or took too long
        return JSONResponse({"error": str(e)}, status_code=500)
    return JSONResponse({"error": f"no graph format {fmt!r} (svg, dot, json)"}, status_code=404)


async def _action(request: Request) -> Response:
    try:
        body = json.loads(await _bounded_body(request))
        verb, moniker = str(body["verb"]), str(body["moniker"])
        return JSONResponse(await _backend(request).act(verb, moniker))
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'send JSON: {"verb": "start", "moniker": "/counter"}'}, status_code=400)
    except Refused as e:
        return _refused(e)


async def _bounded_body(request: Request) -> bytes:
    """The request's body, refused (413) past MAX_BODY: an action is a verb and a moniker."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, f"a request body holds at most {MAX_BODY} bytes")
    return body


async def _events(request: Request) -> Response:
    return StreamingResponse(_event_stream(_backend(request)), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


async def _event_stream(backend: Backend):
    """SSE: each event as ``id: SEQ`` + ``data: JSON``; a comment when idle; a ``gone``
    event and the end when the manager goes away (the page reconnects on its own)."""
    call = backend.subscribe()
    queue: asyncio.Queue = asyncio.Queue()

    async def pump():
        try:
            async for message in call:
                await queue.put(backend.event(message))
        except Exception as e:  # noqa: BLE001 - any end of the stream is told to the page
            await queue.put(e)
        else:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if item is None or isinstance(item, Exception):
                yield f"event: gone\ndata: {json.dumps({'error': 'the manager went away'})}\n\n"
                return
            yield f"id: {item['seq']}\ndata: {json.dumps(item)}\n\n"
    finally:
        call.cancel()
        task.cancel()
