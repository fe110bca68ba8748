"""A Redis server of the test's own, on a free port, that the test may stop and start again.

Outage tests must never stop the shared Redis the other tests use: this starts
`redis-server --port P --save "" --appendonly no` (nothing persisted, so a restart comes back
empty), waits until it answers PING, and stops it with SIGTERM. `start` after `stop` comes
back on the same port, as a restarted Redis would. Tests skip when `redis-server` is not
installed (fail under CI=true, like the other services).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from tests.conftest import unavailable
from tests.support.ports import free_port

STARTUP_SECONDS = 10.0


class RedisServer:
    """One `redis-server` process; `url` stays the same across `stop` and `start`."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start the server and wait until it answers PING."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    await client.ping()
                    return
                except (aioredis.RedisError, OSError):
                    assert self.process.poll() is None, "redis-server exited at start"
                    assert loop.time() < deadline, "redis-server did not answer in time"
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """SIGTERM, and wait until the process is gone (its port refuses connections)."""
        if self.process is None:
            return
        self.process.terminate()
        await asyncio.to_thread(self.process.wait, STARTUP_SECONDS)
        self.process = None


@asynccontextmanager
async def own_redis() -> AsyncIterator[RedisServer]:
    """A started `RedisServer`, stopped at the end whatever its state."""
    executable = shutil.which("redis-server")
    if executable is None:
        unavailable("redis-server", FileNotFoundError("redis-server is not installed"))
        raise AssertionError("unreachable")
    server = RedisServer(executable)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
