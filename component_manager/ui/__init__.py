"""`cm ui`: a local web page that drives a running manager through its gRPC API.

A separate process (never inside the manager): ``serve`` binds a loopback (or Unix) socket,
prints a URL with a fresh token, and runs ``app.make_app`` (Starlette under uvicorn) over
``backend.Backend`` (an asyncio gRPC channel to the manager). The page itself is one file,
``page.html``: no build step, the live parts fed by server-sent events.
"""
