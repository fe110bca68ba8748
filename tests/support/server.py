"""Run the real ASGI app on a real socket (uvicorn, in the test's event loop)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from tollhouse.api.app import create_app
from tollhouse.server.runtime import Runtime


@dataclass
class Served:
    """A running server: its base URL and runtime."""

    base_url: str
    runtime: Runtime


@asynccontextmanager
async def serve(runtime: Runtime) -> AsyncIterator[Served]:
    """Serve `create_app(runtime)` on 127.0.0.1 with a free port until the block ends."""
    app = create_app(runtime)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", loop="asyncio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", runtime)
    finally:
        server.should_exit = True
        await task
        sock.close()


class Api:
    """A small httpx wrapper for the control API with one key.

    `keep_alive=False` sends every request on a new connection: HTTP/1.1 servers answer one
    connection's requests one after the other, so only a new connection sees what happens
    while the previous request is still finishing on the server."""

    def __init__(self, base_url: str, key: str, *, keep_alive: bool = True) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=None if keep_alive else 0),
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def ok(self, method: str, url: str, **kwargs: Any) -> Any:
        """Call and return the JSON body, failing the test on a non-2xx status."""
        response = await self.client.request(method, url, **kwargs)
        assert response.is_success, (response.status_code, response.text)
        return response.json()
