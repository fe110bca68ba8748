"""The bare pass-through proxy: the ceiling a Python gateway on this server stack can reach.

A Starlette app served by uvicorn (uvloop + httptools, one worker) that forwards every
``/v1/...`` request (method, body, ``Authorization``, ``Content-Type``) to the upstream through
ONE pooled ``aiohttp.ClientSession`` and returns the upstream's status and body. An
``text/event-stream`` answer is streamed through chunk by chunk. No auth, no accounting: whatever
tollhouse does on top of this is its overhead, which is what the benchmark measures. It runs
with the gateway's garbage-collector settings (`tollhouse.server.heap.tune_collector`, set once
it serves): they are a process setting, not tollhouse's work, and make this proxy faster too.

Usage::

    python bench/bare_proxy.py --port 9201 [--upstream http://127.0.0.1:9100] [--server uvicorn|granian]

``--server granian`` serves the same app on granian (ASGI, uvloop, one worker) for comparison;
the reference figure is uvicorn's because the gateway runs on uvicorn.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tollhouse.server.heap import tune_collector

UPSTREAM_ENV = "BARE_PROXY_UPSTREAM"
DEFAULT_UPSTREAM = "http://127.0.0.1:9100"
FORWARDED_HEADERS = ("authorization", "content-type", "accept")


class Forwarder:
    """Holds the one pooled client session for the process (created at startup)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=256,
            limit_per_host=256,
            keepalive_timeout=60.0,
            ttl_dns_cache=None,
            enable_cleanup_closed=False,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            # Connect timeout only: per-request and per-read timers cost a few % of CPU.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=None),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def forward(self, request: Request) -> Response:
        """Send the request on to the upstream; answer with its status, content type and body."""
        assert self.session is not None
        scope = request.scope
        url = self.upstream + scope["path"]
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        headers = {}
        for name, value in scope["headers"]:
            lname = name.decode("latin-1")
            if lname in FORWARDED_HEADERS:
                headers[lname] = value.decode("latin-1")
        body = await request.body()
        try:
            upstream = await self.session.request(
                scope["method"], url, data=body or None, headers=headers
            )
        except (aiohttp.ClientError, OSError) as exc:
            return JSONResponse(
                {"error": {"message": f"upstream unreachable: {exc}", "type": "bad_gateway"}},
                status_code=502,
            )
        ctype = upstream.headers.get("Content-Type", "application/json")
        if ctype.startswith("text/event-stream"):
            return StreamingResponse(
                _relay(upstream),
                status_code=upstream.status,
                media_type=ctype,
                headers={"Cache-Control": "no-cache"},
            )
        try:
            data = await upstream.read()
        finally:
            upstream.release()
        return Response(data, status_code=upstream.status, media_type=ctype)


async def _relay(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


def create_app(upstream: str | None = None) -> Starlette:
    """Build the proxy app; the upstream defaults to $BARE_PROXY_UPSTREAM or 127.0.0.1:9100."""
    forwarder = Forwarder(upstream or os.environ.get(UPSTREAM_ENV, DEFAULT_UPSTREAM))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await forwarder.start()
        tune_collector()
        try:
            yield
        finally:
            await forwarder.stop()

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/{rest:path}", forwarder.forward, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )


app = create_app()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bare pass-through proxy (benchmark baseline)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9201)
    parser.add_argument("--upstream", default=os.environ.get(UPSTREAM_ENV, DEFAULT_UPSTREAM))
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    args = parser.parse_args(argv)
    os.environ[UPSTREAM_ENV] = args.upstream
    if args.server == "granian":
        # granian imports the target itself in its worker process: hand it over by name.
        here = Path(__file__).resolve().parent
        cmd = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--loop",
            "uvloop",
            "--workers",
            "1",
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--working-dir",
            str(here),
            "bare_proxy:app",
        ]
        os.execv(sys.executable, cmd)
    import uvicorn

    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
